//! Hash maps and sets of the per-event path, with a fast seeded hasher.
//!
//! Used by every stage that looks something up per event or per span (connections, pairing,
//! routes, series keys, filters). Shape: `std::collections::HashMap`/`HashSet` with
//! `foldhash::fast::RandomState` (the hasher hashbrown uses by default), so `new()` and
//! `with_capacity()` come from [`HashMapExt`] / [`HashSetExt`].
//!
//! Why not std's default: SipHash-1-3 took 6–10% of the receiver's CPU at saturation (perf
//! profile of the receiver under nginx + wrk: series keys, the trace linker's indexes, the
//! connection table). Each map still gets its own random seed, so keys chosen by a remote
//! peer (paths, addresses) cannot be aimed at one map's buckets without knowing the seed;
//! every map an attacker can grow is bounded anyway (see the limits of each stage).

pub use foldhash::{HashMapExt, HashSetExt};

/// `std::collections::HashMap` with a per-map randomly seeded foldhash.
pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// `std::collections::HashSet` with a per-map randomly seeded foldhash.
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
