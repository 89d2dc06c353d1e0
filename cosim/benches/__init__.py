"""cocotb testbenches (run inside the simulator process)."""
