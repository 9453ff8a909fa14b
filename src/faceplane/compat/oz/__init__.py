"""oz compatible routes: parse, one service call, render in the vendor's shape."""
