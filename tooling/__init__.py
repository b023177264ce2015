"""What developers and tests run: the switchboard CLI, the embedded dev stack, provider
sandboxes, the simulator and the hub's Python client. May import services; nothing in
libs/ or services/ imports it."""
