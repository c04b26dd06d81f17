"""Reads or writes one Avro datum with Apache Avro's Python library (Debian's python3-avro).

usage: avro_interop.py write SCHEMA.avsc   (JSON datum on stdin, Avro binary hex on stdout)
       avro_interop.py read SCHEMA.avsc    (Avro binary hex on stdin, JSON datum on stdout)
"""
import io
import json
import sys

import avro.io
import avro.schema


def main():
    mode, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        schema = avro.schema.parse(f.read())
    if mode == "write":
        datum = json.load(sys.stdin)
        out = io.BytesIO()
        avro.io.DatumWriter(schema).write(datum, avro.io.BinaryEncoder(out))
        sys.stdout.write(out.getvalue().hex())
    else:
        data = bytes.fromhex(sys.stdin.read().strip())
        datum = avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data)))
        json.dump(datum, sys.stdout, sort_keys=True)


main()
