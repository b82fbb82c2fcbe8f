static PROBES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/otel-ebpf-probes"));
fn main() {
    println!("{}", PROBES.len());
}
