//! Durations, byte sizes and percentages as users write them: `250ms`, `5m`, `1h30m`, `1MiB`, `0.1%`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration parsed from `250ms`, `10s`, `5m`, `1h 30m`; a bare number is seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }
}

impl FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() {
            return Err("empty duration; expected e.g. 250ms, 10s, 5m, 1h".into());
        }
        if let Ok(secs) = t.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Ok(Dur(Duration::from_secs_f64(secs)));
            }
        }
        humantime::parse_duration(t)
            .map(Dur)
            .map_err(|e| format!("invalid duration '{t}' ({e}); expected e.g. 250ms, 10s, 5m, 1h"))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&fmt_duration(self.0.as_secs_f64()))
    }
}

/// Human form of a number of seconds: `850ms`, `12.34s`, `4m 05s`, `1h 02m`.
/// A target as a person writes it when it is a whole number of hours, minutes or seconds
/// (`5m`, `1h`, `30s`); otherwise as [`fmt_duration`]. Objective names use it: "RTO ≤ 5m".
pub fn fmt_target(secs: f64) -> String {
    let whole = |unit: f64| secs >= unit && (secs / unit).fract() == 0.0;
    if !secs.is_finite() || secs < 0.0 {
        fmt_duration(secs)
    } else if whole(3600.0) {
        format!("{}h", secs / 3600.0)
    } else if whole(60.0) {
        format!("{}m", secs / 60.0)
    } else if whole(1.0) || secs == 0.0 {
        format!("{secs}s")
    } else {
        fmt_duration(secs)
    }
}

pub fn fmt_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "-".into();
    }
    let neg = secs < 0.0;
    let s = secs.abs();
    let body = if s < 1.0 {
        format!("{:.0}ms", s * 1000.0)
    } else if s < 60.0 {
        format!("{s:.2}s")
    } else if s < 3600.0 {
        format!("{}m {:02}s", (s / 60.0).floor(), (s % 60.0).floor())
    } else {
        format!(
            "{}h {:02}m",
            (s / 3600.0).floor(),
            ((s % 3600.0) / 60.0).floor()
        )
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor::<Dur>::new("a duration like 250ms, 10s, 5m"))
    }
}

impl FromNumber for Dur {
    fn from_number(n: f64) -> Result<Self, String> {
        if n.is_finite() && n >= 0.0 {
            Ok(Dur(Duration::from_secs_f64(n)))
        } else {
            Err(format!("invalid duration {n}"))
        }
    }
}

/// Types written either as a string or as a bare number in scenario files.
trait FromNumber: Sized + FromStr<Err = String> {
    fn from_number(n: f64) -> Result<Self, String>;
}

/// Deserializes from the scalar itself (no buffering), so errors keep the value's position.
struct ScalarVisitor<T> {
    expecting: &'static str,
    _t: std::marker::PhantomData<T>,
}

impl<T> ScalarVisitor<T> {
    fn new(expecting: &'static str) -> Self {
        ScalarVisitor {
            expecting,
            _t: std::marker::PhantomData,
        }
    }
}

impl<T: FromNumber> serde::de::Visitor<'_> for ScalarVisitor<T> {
    type Value = T;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.expecting)
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        T::from_number(v).map_err(E::custom)
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<T, E> {
        T::from_number(v as f64).map_err(E::custom)
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        T::from_number(v as f64).map_err(E::custom)
    }
}

/// A fraction parsed from `0.1%`, `5%` or a plain ratio `0.001`.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Ratio(pub f64);

impl FromStr for Ratio {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let (num, scale) = match t.strip_suffix('%') {
            Some(n) => (n.trim(), 100.0),
            None => (t, 1.0),
        };
        let v: f64 = num
            .parse()
            .map_err(|_| format!("invalid ratio '{t}'; expected e.g. 0.1% or 0.001"))?;
        let r = v / scale;
        if !(0.0..=1.0).contains(&r) {
            return Err(format!("ratio '{t}' is outside 0%..100%"));
        }
        Ok(Ratio(r))
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", trim_float(self.0 * 100.0))
    }
}

fn trim_float(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

impl Serialize for Ratio {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Ratio {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor::<Ratio>::new("a ratio like 0.1% or 0.001"))
    }
}

impl FromNumber for Ratio {
    fn from_number(n: f64) -> Result<Self, String> {
        if (0.0..=1.0).contains(&n) {
            Ok(Ratio(n))
        } else {
            Err(format!("ratio {n} is outside 0..1"))
        }
    }
}

/// A byte size parsed from `512`, `10KB`, `1MiB`, `2G`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid size '{t}'; expected e.g. 512, 10KB, 1MiB, 2G"))?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kb" => 1000,
            "kib" => 1 << 10,
            "m" | "mb" => 1000 * 1000,
            "mib" => 1 << 20,
            "g" | "gb" => 1000 * 1000 * 1000,
            "gib" => 1 << 30,
            "t" | "tb" => 1000u64.pow(4),
            "tib" => 1 << 40,
            other => {
                return Err(format!(
                    "unknown size unit '{other}' in '{t}'; use B, KB, KiB, MB, MiB, GB, GiB"
                ))
            }
        };
        Ok(Size((n * mult as f64).round() as u64))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0 as f64;
        if self.0 < 1024 {
            write!(f, "{} B", self.0)
        } else if b < 1024.0 * 1024.0 {
            write!(f, "{:.1} KiB", b / 1024.0)
        } else if b < 1024.0 * 1024.0 * 1024.0 {
            write!(f, "{:.1} MiB", b / 1024.0 / 1024.0)
        } else {
            write!(f, "{:.2} GiB", b / 1024.0 / 1024.0 / 1024.0)
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor::<Size>::new("a size like 512, 10KB, 1MiB"))
    }
}

impl FromNumber for Size {
    fn from_number(n: f64) -> Result<Self, String> {
        if n.is_finite() && n >= 0.0 {
            Ok(Size(n.round() as u64))
        } else {
            Err(format!("invalid size {n}"))
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_users_write_them() {
        assert_eq!("250ms".parse::<Dur>(), Ok(Dur::millis(250)));
        assert_eq!("5m".parse::<Dur>(), Ok(Dur::secs(300)));
        assert_eq!("1h 30m".parse::<Dur>(), Ok(Dur::secs(5400)));
        assert_eq!("1.5".parse::<Dur>(), Ok(Dur::millis(1500)));
        assert!("5 parsecs".parse::<Dur>().is_err());
        assert!("".parse::<Dur>().is_err());
        assert!("-3s".parse::<Dur>().is_err());
    }

    #[test]
    fn ratios_and_sizes() {
        assert_eq!("0.1%".parse::<Ratio>(), Ok(Ratio(0.001)));
        assert_eq!("0.25".parse::<Ratio>(), Ok(Ratio(0.25)));
        assert!("150%".parse::<Ratio>().is_err());
        assert_eq!("1MiB".parse::<Size>(), Ok(Size(1 << 20)));
        assert_eq!("10KB".parse::<Size>(), Ok(Size(10_000)));
        assert!("3 furlongs".parse::<Size>().is_err());
    }

    #[test]
    fn durations_format_for_people() {
        assert_eq!(fmt_duration(0.0421), "42ms");
        assert_eq!(fmt_duration(3.004), "3.00s");
        assert_eq!(fmt_duration(305.0), "5m 05s");
    }
}
