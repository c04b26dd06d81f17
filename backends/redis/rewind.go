package redis

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Rewind moves an existing consumer group of stream so that it next reads the entries after id
// (XGROUP SETID), creating the group there if it does not exist: replay by stream id. Use
// IDBefore(t) to replay by time, "0" for the whole retained stream, "$" to skip to the end.
// Entries pending in the group stay pending. Subscribers see the change on their next read;
// entries they buffered already are still delivered.
func Rewind(ctx context.Context, client redis.UniversalClient, stream, group, id string) error {
	if stream == "" || group == "" {
		return fmt.Errorf("rewind: stream and group must not be empty")
	}
	if id != "$" && !streamIDPattern.MatchString(id) {
		return fmt.Errorf("rewind %s group %s: %q is not a stream id such as 1732363200000-0", stream, group, id)
	}
	err := client.XGroupSetID(ctx, stream, group, id).Err()
	if isNoGroup(err) {
		err = client.XGroupCreateMkStream(ctx, stream, group, id).Err()
	}
	if err != nil {
		return fmt.Errorf("rewind %s group %s to %s: %w", stream, group, id, err)
	}
	return nil
}

// RewindTo is Rewind to the first entry added at or after t.
func RewindTo(ctx context.Context, client redis.UniversalClient, stream, group string, t time.Time) error {
	return Rewind(ctx, client, stream, group, IDBefore(t))
}
