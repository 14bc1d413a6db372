//go:build !race

package tsfile

// flipStride is the distance between the bytes TestFileFlipsNeverPanic flips.
const flipStride = 1
