package peer_test

const childEnv = "WEIR_PEER_CHILD_DIR"

func childReceiver(dir string) {}
