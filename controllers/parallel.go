package controllers

import (
	"errors"
	"sync"
)

// runParallel runs writes, at most limit at a time, and returns all their errors.
func runParallel(writes []func() error, limit int) error {
	var (
		mu     sync.Mutex
		errs   []error
		wg     sync.WaitGroup
		tokens = make(chan struct{}, limit)
	)
	for _, write := range writes {
		tokens <- struct{}{}
		wg.Go(func() {
			defer func() { <-tokens }()
			if err := write(); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
