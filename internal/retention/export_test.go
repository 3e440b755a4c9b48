package retention

// SetSwept makes Run report every sweep to f. Call it before Run.
func SetSwept(s *Sweeper, f func(Result, error)) { s.swept = f }
