package rabbitmq

// ChannelsOpened is how many AMQP channels c has opened since it was created, for tests that
// check that publishing reuses its pooled channels.
func ChannelsOpened(c *Connection) uint64 { return c.channelsOpened.Load() }
