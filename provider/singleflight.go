package provider

import (
	"context"
	"time"

	"golang.org/x/sync/singleflight"
)

// sharedCall runs fn once for all the concurrent callers of key in g, with a
// deadline of its own (timeout), so that one caller's cancelled request
// cannot fail the others; a caller whose ctx ends first gets ctx's error.
func sharedCall[T any](ctx context.Context, g *singleflight.Group, key string, timeout time.Duration, fn func(context.Context) (T, error)) (T, error) {
	ch := g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
		defer cancel()
		v, err := fn(fctx)
		return v, err
	})
	var zero T
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}
