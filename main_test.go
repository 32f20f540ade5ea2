package main

import "testing"

func TestSoftMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		name, containerLimit, goMemLimit string
		want                             int64
		wantOK                           bool
	}{
		{"90 % of the container's limit", "268435456", "", 241591905, true},
		{"GOMEMLIMIT wins", "268435456", "200MiB", 0, false},
		{"no limit", "", "", 0, false},
		{"not a number", "256Mi", "", 0, false},
		{"zero", "0", "", 0, false},
	} {
		got, ok := softMemoryLimit(tc.containerLimit, tc.goMemLimit)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: softMemoryLimit(%q, %q) = %d, %v; want %d, %v", tc.name, tc.containerLimit, tc.goMemLimit, got, ok, tc.want, tc.wantOK)
		}
	}
}
