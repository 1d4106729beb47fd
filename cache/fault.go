package cache

import "fmt"

// fault counts, reports and wraps an error that means a bug or bad data: an
// answer from Redis classified Invalid by internal/rediserr (WRONGTYPE on a cache key, a
// script error, NOAUTH) or a stored value this cache cannot read
// (ErrBadValue). The loader never answers for these: the caller gets the
// error, the log gets one line per operation and kind, Stats.Invalid counts
// each.
func (c *Cache[V]) fault(op, key string, err error) error {
	c.st.invalid.Add(1)
	if h := c.cfg.hooks.OnError; h != nil {
		h(op, err, true)
	}
	c.faults.Report(c.log, "cache: redis answer means a bug or bad data (not an outage: the loader does not answer)", op, err, "key", key)
	return fmt.Errorf("cache: %s %q: %w", op, key, err)
}

// badValue is fault for a stored value that does not parse or decode.
func (c *Cache[V]) badValue(op, key string, err error) error {
	return c.fault(op, key, fmt.Errorf("%w: %w", ErrBadValue, err))
}

// readValue reads raw, the bytes stored at key: lease is true for another
// replica's load lease (nothing to serve yet); err wraps ErrBadValue (and is
// reported) when raw is not an entry this cache can decode.
func (c *Cache[V]) readValue(op, key string, raw []byte) (e entry[V], env envelope, lease bool, err error) {
	env, err = parseEnvelope(raw)
	if err != nil {
		return e, env, false, c.badValue(op, key, err)
	}
	if env.lease() {
		return e, env, true, nil
	}
	if e, err = c.decode(&env); err != nil {
		return e, env, false, c.badValue(op, key, err)
	}
	return e, env, false, nil
}
