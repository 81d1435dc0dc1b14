"""Plan: what an audit computes, derived before anything runs (:mod:`.plan`)."""
