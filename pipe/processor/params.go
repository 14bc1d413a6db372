package processor

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/weir-dev/weir/pipe"
)

// Parameter keys shared by several processors.
const (
	keyPattern  = "pattern"
	keyTimeUnit = "time-unit"
	keyInterval = "interval"
)

// positive is a ParamSpec.Check for durations that must be above zero.
func positive(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("%q must be above zero", v)
	}
	return nil
}

// optionalPositive is positive for a duration that may be left empty (meaning "none").
func optionalPositive(v string) error {
	if v == "" {
		return nil
	}
	return positive(v)
}

var timeUnitParam = pipe.ParamSpec{Key: keyTimeUnit, Type: pipe.Enum, Enum: []string{"ms", "us", "ns"}, Default: "ms",
	Doc: "the unit of the database's timestamps, to turn durations into time steps"}

func patternParam(doc string) pipe.ParamSpec {
	return pipe.ParamSpec{Key: keyPattern, Type: pipe.PatternParam, Default: "root.**", Doc: doc}
}

// ticks converts d into steps of the time unit ("ms", "us", "ns"); key names the
// parameter in the error when d is not a whole, positive number of steps.
func ticks(key string, d time.Duration, unit string) (int64, error) {
	step := time.Millisecond
	switch unit {
	case "us":
		step = time.Microsecond
	case "ns":
		step = time.Nanosecond
	}
	if d <= 0 {
		return 0, fmt.Errorf("%s: %s must be above zero", key, d)
	}
	if d%step != 0 {
		return 0, fmt.Errorf("%s: %s is not a whole number of %s (time-unit)", key, d, unit)
	}
	return int64(d / step), nil
}

// optDuration reads an optional duration parameter: 0 when unset or empty.
func optDuration(p pipe.Params, key string) (time.Duration, error) {
	v, ok := p.Raw(key)
	if !ok || strings.TrimSpace(v) == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%s: %q is not a duration (e.g. 500ms, 5s, 1m)", key, v)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s: %s is negative", key, d)
	}
	return d, nil
}

// errKey wraps err as a problem of parameter key.
func errKey(key string, err error) error {
	if err == nil {
		return nil
	}
	var ke *keyError
	if errors.As(err, &ke) {
		return err
	}
	return &keyError{key: key, err: err}
}

type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }
