package groupcommit

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestFirstAddLeadsUntilNextFindsNone(t *testing.T) {
	var q Queues[int]
	if !q.Add("a", 1) {
		t.Fatal("the first Add under a key does not lead")
	}
	if q.Add("a", 2) {
		t.Fatal("a second Add leads while the first leader runs")
	}
	if !q.Add("b", 1) {
		t.Fatal("another key's first Add does not lead")
	}
	if got := q.Waiting("a"); got != 2 {
		t.Fatalf("Waiting = %d, want 2", got)
	}
	if got := q.Next("a"); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("Next = %v, want [1 2]", got)
	}
	if q.Add("a", 3) {
		t.Fatal("an Add between two batches leads while the leader runs")
	}
	if got := q.Next("a"); !slices.Equal(got, []int{3}) {
		t.Fatalf("Next = %v, want [3]", got)
	}
	if got := q.Next("a"); got != nil {
		t.Fatalf("Next with nothing waiting = %v, want nil", got)
	}
	if !q.Add("a", 4) {
		t.Fatal("the first Add after the leader finished does not lead")
	}
}

// Many requests racing under a few keys: each is taken exactly once, and in the order each
// producer added it.
func TestRacingAddsEachTakenOnceInOrder(t *testing.T) {
	const keys, producers, perProducer = 3, 8, 500
	var q Queues[[2]int] // producer, sequence
	var mu sync.Mutex
	taken := map[string][][2]int{}
	var wg, leading sync.WaitGroup
	lead := func(key string) {
		defer leading.Done()
		for {
			batch := q.Next(key)
			if batch == nil {
				return
			}
			mu.Lock()
			taken[key] = append(taken[key], batch...)
			mu.Unlock()
		}
	}
	for p := range producers {
		wg.Go(func() {
			for i := range perProducer {
				key := fmt.Sprint((p + i) % keys)
				if q.Add(key, [2]int{p, i}) {
					leading.Add(1)
					go lead(key)
				}
			}
		})
	}
	wg.Wait()
	leading.Wait()
	total := 0
	for key, items := range taken {
		total += len(items)
		last := map[int]int{}
		for _, it := range items {
			if prev, ok := last[it[0]]; ok && it[1] <= prev {
				t.Errorf("key %s: producer %d's request %d taken after %d", key, it[0], it[1], prev)
			}
			last[it[0]] = it[1]
		}
	}
	if total != producers*perProducer {
		t.Errorf("taken %d requests, want %d", total, producers*perProducer)
	}
	if got := q.Waiting("0"); got != 0 {
		t.Errorf("Waiting after every leader finished = %d, want 0", got)
	}
}
