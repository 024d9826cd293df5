//! Criterion benchmarks of the crypto core (being written).

fn main() {}
