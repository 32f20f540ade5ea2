// Package groupcommit queues requests per key for group commit: the first request to find no
// leader for its key leads it, taking batch after batch of the requests that arrived meanwhile
// until none is left. Requests racing in one replica then share one write per batch, and no
// request waits for the batches after its own.
package groupcommit

import "sync"

// Queues holds the requests waiting under each key. The zero value is ready to use.
type Queues[T any] struct {
	mu sync.Mutex
	// waiting holds a key for as long as it has a leader, even with nothing waiting.
	waiting map[string][]T
}

// Add queues item under key and reports whether the caller must lead the key: take its batches
// with Next until Next returns none.
func (q *Queues[T]) Add(key string, item T) (lead bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.waiting == nil {
		q.waiting = map[string][]T{}
	}
	w, led := q.waiting[key]
	q.waiting[key] = append(w, item)
	return !led
}

// Next takes everything waiting under key, in the order it was added. When nothing is waiting
// it returns nil and the leader's work is done: the next Add under key leads it.
func (q *Queues[T]) Next(key string) []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch := q.waiting[key]
	if len(batch) == 0 {
		delete(q.waiting, key)
		return nil
	}
	q.waiting[key] = nil
	return batch
}

// Waiting is how many requests wait under key for its next batch.
func (q *Queues[T]) Waiting(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.waiting[key])
}
