// Package redisstore keeps the router middleware's shared state in Redis, so that every
// instance of a consumer group, and the next process after a restart, sees the same: the ids of
// events already handled (Dedup, a middleware.DedupStore) and the park policy's state (Park, a
// middleware.ParkStore). It is its own package so that importing middleware does not pull in
// go-redis; the router opens these stores for router.dedup.store: redis and
// router.poison.store: redis. Its connection settings have the keys and meaning of the redis:
// backend section's.
package redisstore
