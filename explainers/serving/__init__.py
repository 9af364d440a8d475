"""Serving: what a shared server or a long run needs - admission, threads, allocator settings, limits, preloading."""
