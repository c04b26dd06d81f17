package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventbus-go/eventbus/bus"
	"github.com/eventbus-go/eventbus/bus/driver"
)

// adminToy is a driver whose connection has the Admin its config carries (none by default).
type adminToy struct{}

type adminToyConfig struct{ admin *driver.Admin }

func (adminToy) DefaultConfig() *adminToyConfig { return &adminToyConfig{} }
func (adminToy) Open(_ context.Context, c *adminToyConfig, _ driver.Options) (*driver.Conn, error) {
	return &driver.Conn{Admin: c.admin}, nil
}

func init() { driver.Register[adminToyConfig]("admintoy", adminToy{}) }

func TestRewindAndStatusWithoutAdminAreNotSupported(t *testing.T) {
	ctx := context.Background()
	b, err := bus.OpenConfig(ctx, "admintoy", &adminToyConfig{})
	require.NoError(t, err)
	defer b.Close()
	_, err = b.Rewind(ctx, "t", "g", bus.RewindTarget{At: time.Now()}, true)
	assert.ErrorIs(t, err, bus.ErrNotSupported)
	assert.ErrorContains(t, err, "admintoy")
	_, err = b.Status(ctx, "t")
	assert.ErrorIs(t, err, bus.ErrNotSupported)
	_, err = b.PoisonQueue(ctx, bus.PoisonQueueOptions{Topic: "t", PoisonTopic: "t.poison"})
	assert.ErrorIs(t, err, bus.ErrNotSupported)
	assert.ErrorContains(t, err, "admintoy")
}

func TestPoisonQueueChecksItsArgumentsAndPassesThem(t *testing.T) {
	ctx := context.Background()
	var got bus.PoisonQueueOptions
	admin := &driver.Admin{PoisonQueue: func(_ context.Context, o driver.PoisonQueueOptions) (driver.PoisonQueue, error) {
		got = o
		return nil, nil
	}}
	b, err := bus.OpenConfig(ctx, "admintoy", &adminToyConfig{admin: admin})
	require.NoError(t, err)
	_, err = b.PoisonQueue(ctx, bus.PoisonQueueOptions{Topic: "t"})
	assert.ErrorContains(t, err, "poison topic must not be empty")
	want := bus.PoisonQueueOptions{Topic: "t", PoisonTopic: "t.dead", Group: "g", Redrive: true}
	_, err = b.PoisonQueue(ctx, want)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	require.NoError(t, b.Close())
	_, err = b.PoisonQueue(ctx, want)
	assert.ErrorIs(t, err, bus.ErrClosed)
}

func TestRewindChecksItsArgumentsAndPassesThem(t *testing.T) {
	ctx := context.Background()
	var got []any
	admin := &driver.Admin{Rewind: func(_ context.Context, topic, group string, to driver.RewindTarget, dryRun bool) ([]driver.PartitionPosition, error) {
		got = []any{topic, group, to.Position, dryRun}
		return []driver.PartitionPosition{{Topic: topic, Group: group, Partition: "0", To: to.Position}}, nil
	}}
	b, err := bus.OpenConfig(ctx, "admintoy", &adminToyConfig{admin: admin})
	require.NoError(t, err)
	for _, c := range []struct {
		topic, group string
		to           bus.RewindTarget
		want         string
	}{
		{"", "g", bus.RewindTarget{Position: "0:1"}, "must not be empty"},
		{"t", "", bus.RewindTarget{Position: "0:1"}, "must not be empty"},
		{"t", "g", bus.RewindTarget{}, "not both or neither"},
		{"t", "g", bus.RewindTarget{At: time.Now(), Position: "0:1"}, "not both or neither"},
	} {
		_, err := b.Rewind(ctx, c.topic, c.group, c.to, false)
		assert.ErrorContains(t, err, c.want, c)
	}
	assert.Nil(t, got, "the driver was called with bad arguments")
	pos, err := b.Rewind(ctx, "t", "g", bus.RewindTarget{Position: "0:1"}, true)
	require.NoError(t, err)
	assert.Equal(t, []any{"t", "g", "0:1", true}, got)
	assert.Equal(t, "0:1", pos[0].To)

	require.NoError(t, b.Close())
	_, err = b.Rewind(ctx, "t", "g", bus.RewindTarget{Position: "0:1"}, true)
	assert.ErrorIs(t, err, bus.ErrClosed)
}
