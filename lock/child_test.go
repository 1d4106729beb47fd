package lock_test

func runChild() bool { return false }
