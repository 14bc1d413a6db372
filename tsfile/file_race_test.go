//go:build race

package tsfile

// flipStride is the distance between the bytes TestFileFlipsNeverPanic flips: the race
// detector makes every decode much slower.
const flipStride = 41
