//! io_uring setup flags of each shard's ring (`IORING_SETUP_*`), chosen at start.
//!
//! A shard's ring is created on, and only ever entered from, its own thread (compio wakes it
//! from other threads through an eventfd, not by submitting), which is what `SINGLE_ISSUER`
//! promises the kernel. `DEFER_TASKRUN` (needs `SINGLE_ISSUER`, Linux 6.1) runs completion
//! task work only when the shard enters the kernel to reap, instead of interrupting it at any
//! moment; `COOP_TASKRUN` (Linux 5.19, with `TASKRUN_FLAG`) stops the kernel from forcing an
//! inter-processor interrupt to run it. All are off unless asked for: whether they pay is
//! measured (BENCHMARKS.md), and an older kernel refuses the ring (the shard fails to start,
//! naming the error) rather than silently running without them.

use std::fmt;
use std::str::FromStr;

/// Which optional setup flags each shard's io_uring is created with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingSetup {
    pub single_issuer: bool,
    pub defer_taskrun: bool,
    pub coop_taskrun: bool,
}

/// A flag name `RingSetup::from_str` does not know, or DEFER_TASKRUN without SINGLE_ISSUER.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("io_uring setup {0:?}: expected a comma-separated list of SINGLE_ISSUER, DEFER_TASKRUN (with SINGLE_ISSUER), COOP_TASKRUN")]
pub struct RingSetupError(pub String);

impl RingSetup {
    /// Applies the flags to a compio proactor builder.
    pub fn apply(self, builder: &mut compio::driver::ProactorBuilder) {
        builder
            .single_issuer(self.single_issuer)
            .defer_taskrun(self.defer_taskrun)
            .coop_taskrun(self.coop_taskrun)
            .taskrun_flag(self.coop_taskrun);
    }
}

impl FromStr for RingSetup {
    type Err = RingSetupError;

    /// `""` = none; otherwise e.g. `"SINGLE_ISSUER,DEFER_TASKRUN"` (case-insensitive, an
    /// `IORING_SETUP_` prefix allowed).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut setup = RingSetup::default();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let upper = name.to_ascii_uppercase();
            match upper.strip_prefix("IORING_SETUP_").unwrap_or(&upper) {
                "SINGLE_ISSUER" => setup.single_issuer = true,
                "DEFER_TASKRUN" => setup.defer_taskrun = true,
                "COOP_TASKRUN" => setup.coop_taskrun = true,
                _ => return Err(RingSetupError(s.to_owned())),
            }
        }
        if setup.defer_taskrun && !setup.single_issuer {
            return Err(RingSetupError(s.to_owned()));
        }
        Ok(setup)
    }
}

impl fmt::Display for RingSetup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.single_issuer, "SINGLE_ISSUER"),
            (self.defer_taskrun, "DEFER_TASKRUN"),
            (self.coop_taskrun, "COOP_TASKRUN"),
        ];
        let on: Vec<&str> = names
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
        f.write_str(&on.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_refuses_the_rest() {
        assert_eq!("".parse::<RingSetup>().unwrap(), RingSetup::default());
        let all: RingSetup = "single_issuer, IORING_SETUP_DEFER_TASKRUN,COOP_TASKRUN"
            .parse()
            .unwrap();
        assert!(all.single_issuer && all.defer_taskrun && all.coop_taskrun);
        assert_eq!(all.to_string(), "SINGLE_ISSUER,DEFER_TASKRUN,COOP_TASKRUN");
        assert_eq!(all.to_string().parse::<RingSetup>().unwrap(), all);
        assert!("SQPOLL".parse::<RingSetup>().is_err());
        assert!(
            "DEFER_TASKRUN".parse::<RingSetup>().is_err(),
            "needs SINGLE_ISSUER"
        );
    }
}
