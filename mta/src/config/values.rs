//! Config value types that read the way operators write them: sizes (`"50MiB"`), durations
//! (`"5m"`) and networks (`"192.0.2.0/24"`). Each also accepts the bare number where that is
//! unambiguous (octets, seconds).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A size in octets: an integer, or a string with a unit (`K`/`KiB`, `M`/`MiB`, `G`/`GiB` are
/// powers of 1024; `KB`, `MB`, `GB` powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size (try \"50MiB\")"))?;
        let mult: u64 = match unit.trim() {
            "" | "B" => 1,
            "K" | "KiB" | "k" => 1 << 10,
            "M" | "MiB" => 1 << 20,
            "G" | "GiB" => 1 << 30,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            other => return Err(format!("unknown size unit {other:?} in {s:?} (use B, KiB, MiB, GiB, KB, MB, GB)")),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(|| format!("{s:?} is too large"))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
            if n >= size && n.is_multiple_of(size) {
                return write!(f, "{}{unit}", n / size);
            }
        }
        write!(f, "{n}")
    }
}

/// A duration: integer seconds, or a string of number+unit parts (`"500ms"`, `"30s"`, `"5m"`,
/// `"4h"`, `"5d"`, `"1h30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        if text.is_empty() {
            return Err("empty duration".into());
        }
        let mut total = Duration::ZERO;
        let mut rest = text;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("{text:?} is not a duration (try \"30s\", \"5m\", \"4h\", \"5d\")"));
            }
            let n: u64 = rest[..digits].parse().map_err(|_| format!("{text:?}: number too large"))?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = &rest[unit_len..];
            let part = match unit.trim() {
                "ms" => Duration::from_millis(n),
                "" | "s" => Duration::from_secs(n),
                "m" => Duration::from_secs(n.saturating_mul(60)),
                "h" => Duration::from_secs(n.saturating_mul(3600)),
                "d" => Duration::from_secs(n.saturating_mul(86_400)),
                other => return Err(format!("unknown duration unit {other:?} in {text:?} (use ms, s, m, h, d)")),
            };
            total = total.saturating_add(part);
        }
        Ok(Span(total))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if !ms.is_multiple_of(1000) {
            return write!(f, "{ms}ms");
        }
        let s = self.0.as_secs();
        for (unit, size) in [("d", 86_400u64), ("h", 3600), ("m", 60)] {
            if s >= size && s.is_multiple_of(size) {
                return write!(f, "{}{unit}", s / size);
            }
        }
        write!(f, "{s}s")
    }
}

/// An IP network in CIDR notation; a bare address means a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies in this network. IPv4-mapped IPv6 clients (`::ffff:a.b.c.d`, as a
    /// dual-stack listener reports them) match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| format!("{s:?} is not an IP network (try \"192.0.2.0/24\")"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => {
                p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: prefix length must be 0..={max}"))?
            }
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Serde support for the types above: parse from a string (or a bare integer where allowed),
/// print back in the same notation.
macro_rules! string_serde {
    ($ty:ty, $expect:literal, $from_int:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expect)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                        let from_int: Option<fn(u64) -> $ty> = $from_int;
                        match (from_int, u64::try_from(v)) {
                            (Some(f), Ok(n)) => Ok(f(n)),
                            _ => Err(E::invalid_type(de::Unexpected::Signed(v), &self)),
                        }
                    }
                }
                d.deserialize_any(V)
            }
        }
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

string_serde!(ByteSize, "a size such as 52428800 or \"50MiB\"", Some(ByteSize));
string_serde!(Span, "a duration such as 300 or \"5m\"", Some(|n| Span(Duration::from_secs(n))));
string_serde!(IpNet, "an IP network such as \"192.0.2.0/24\"", None);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("50MiB".parse::<ByteSize>(), Ok(ByteSize(50 << 20)));
        assert_eq!("10 KB".parse::<ByteSize>(), Ok(ByteSize(10_000)));
        assert_eq!("123".parse::<ByteSize>(), Ok(ByteSize(123)));
        assert!("12XB".parse::<ByteSize>().is_err());
        assert!("MiB".parse::<ByteSize>().is_err());
        assert!("99999999999999999999G".parse::<ByteSize>().is_err());
        assert_eq!(ByteSize(50 << 20).to_string(), "50MiB");
        assert_eq!(ByteSize(1000).to_string(), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!("5m".parse::<Span>(), Ok(Span(Duration::from_secs(300))));
        assert_eq!("1h30m".parse::<Span>(), Ok(Span(Duration::from_secs(5400))));
        assert_eq!("250ms".parse::<Span>(), Ok(Span(Duration::from_millis(250))));
        assert_eq!("5d".parse::<Span>(), Ok(Span(Duration::from_secs(432_000))));
        assert!("5x".parse::<Span>().is_err());
        assert!("".parse::<Span>().is_err());
        assert!("m5".parse::<Span>().is_err());
        assert_eq!(Span(Duration::from_secs(14_400)).to_string(), "4h");
        assert_eq!(Span(Duration::from_millis(1500)).to_string(), "1500ms");
    }

    #[test]
    fn networks() {
        let net: IpNet = "192.0.2.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(net.contains("192.0.2.77".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!net.contains("192.0.3.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(net.contains("::ffff:192.0.2.9".parse().unwrap_or_else(|e| panic!("{e}"))));
        let all: IpNet = "0.0.0.0/0".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(all.contains("203.0.113.1".parse().unwrap_or_else(|e| panic!("{e}"))));
        let host: IpNet = "2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(host.contains("2001:db8::1".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!(!host.contains("2001:db8::2".parse().unwrap_or_else(|e| panic!("{e}"))));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("not-an-ip".parse::<IpNet>().is_err());
    }
}
