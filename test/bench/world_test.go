package main

import (
	"maps"
	"testing"
)

func TestBindingWrites(t *testing.T) {
	before := map[string][]string{
		"a/view": {"ann", "bob"}, // bob leaves: a patch
		"a/edit": {"cat"},        // unchanged: nothing
		"b/view": {"bob"},        // emptied: a delete
	}
	after := map[string][]string{
		"a/view": {"ann"},
		"a/edit": {"cat"},
		"b/edit": {"bob"}, // new: a create
	}
	got := bindingWrites(before, after)
	want := map[string]float64{"patch rolebindings": 1, "delete rolebindings": 1, "create rolebindings": 1}
	if !maps.Equal(got, want) {
		t.Fatalf("bindingWrites = %v, want %v", got, want)
	}
	if got := bindingWrites(after, after); len(got) != 0 {
		t.Fatalf("bindingWrites of equal bindings = %v, want none", got)
	}
}
