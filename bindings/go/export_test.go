package noxy

// InFlight is how many operations of c have started and not yet been received back by their
// calls: a condition the tests wait for before they cancel or close.
func InFlight(c *Client) int64 { return c.inFlight.Load() }

// LiveLogSinks is how many log handlers the library holds and has not released yet.
func LiveLogSinks() int64 { return liveLogSinks.Load() }
