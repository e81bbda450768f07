package main

import (
	"fmt"
	"io/fs"
	"math"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"
)

// bytesFlag accepts a byte count as a Kubernetes quantity ("50Gi", "500M", "1048576"), the notation of
// the emptyDir sizeLimit it must fit in.
type bytesFlag struct{ v *int64 }

func (f bytesFlag) String() string {
	if f.v == nil {
		return ""
	}
	return resource.NewQuantity(*f.v, resource.BinarySI).String()
}

func (f bytesFlag) Set(s string) error {
	q, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("%q is not a quantity such as 50Gi or 500M", s)
	}
	if q.Sign() <= 0 || q.Cmp(*resource.NewQuantity(math.MaxInt64, resource.BinarySI)) > 0 {
		return fmt.Errorf("%q is not a positive number of bytes", s)
	}
	*f.v = q.Value() // a fraction of a byte rounds up
	return nil
}

// modeFlag accepts permission bits in octal ("0644", "644").
type modeFlag struct{ v *fs.FileMode }

func (f modeFlag) String() string {
	if f.v == nil {
		return ""
	}
	return fmt.Sprintf("%04o", uint32(*f.v))
}

func (f modeFlag) Set(s string) error {
	n, err := strconv.ParseUint(s, 8, 32)
	if err != nil || n == 0 || n > 0o777 {
		return fmt.Errorf("%q is not an octal permission such as 0644", s)
	}
	*f.v = fs.FileMode(n)
	return nil
}
