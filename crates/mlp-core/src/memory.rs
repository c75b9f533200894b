//! How much memory this machine has free: what a data set or a network must fit in before it
//! is allocated, so that a size too large is refused with a message instead of aborting.

/// Bytes of memory available to a new allocation (Linux's MemAvailable), or `None` where the
/// system does not say.
pub fn available_memory() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn linux_reports_some_memory() {
        if cfg!(target_os = "linux") {
            assert!(super::available_memory().unwrap() > 1 << 20);
        }
    }
}
