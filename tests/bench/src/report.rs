//! The one table `make bench` prints (markdown), with the machine it was measured on.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::cold::{BatchMemory, ColdStart, BASELINE};
use crate::inproc::{Batch, Cost, Requests};
use crate::scenario::Function;
use crate::size::Package;

pub const COLD_START_RATIO: f64 = 1.3;
pub const RSS_LIMIT_MIB: f64 = 32.0;
pub const ZIP_LIMIT_MIB: f64 = 6.0;
pub const BATCH_RATIO: f64 = 1.5;

pub struct Results {
    pub runs: usize,
    pub cold: Vec<ColdStart>,
    pub memory: Vec<BatchMemory>,
    pub packages: Vec<Package>,
    pub requests: Vec<Requests>,
    pub batches: Vec<Batch>,
}

/// The median (mean of the two middle values for an even count).
pub fn median(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2,
    }
}

/// The 90th percentile, nearest rank.
pub fn p90(values: &[Duration]) -> Duration {
    let mut v = values.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = (v.len() * 9).div_ceil(10).max(1);
    v[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

fn verdict(pass: bool) -> &'static str {
    if pass {
        "pass"
    } else {
        "**MISS**"
    }
}

struct Table {
    rows: Vec<[String; 5]>,
    misses: Vec<String>,
}

impl Table {
    fn row(
        &mut self,
        measure: &str,
        subject: &str,
        measured: String,
        target: &str,
        pass: Option<bool>,
    ) {
        if pass == Some(false) {
            self.misses.push(format!("{measure} ({subject})"));
        }
        self.rows.push([
            measure.to_string(),
            subject.to_string(),
            measured,
            target.to_string(),
            pass.map(verdict).unwrap_or("reference").to_string(),
        ]);
    }
}

/// The table, and the rows whose target was missed.
pub fn render(results: &Results, machine: &Machine) -> (String, Vec<String>) {
    let mut t = Table {
        rows: Vec::new(),
        misses: Vec::new(),
    };
    let baseline = results.cold.iter().find(|c| c.name == BASELINE);
    let cold_rows = |t: &mut Table, label: &str, pick: fn(&ColdStart) -> Vec<Duration>| {
        let base = baseline.map(|b| median(&pick(b)));
        for c in &results.cold {
            let (m, p) = (median(&pick(c)), p90(&pick(c)));
            if c.name == BASELINE {
                t.row(
                    label,
                    BASELINE,
                    format!("{} (p90 {})", ms(m), ms(p)),
                    "reference",
                    None,
                );
                continue;
            }
            let ratio = base
                .filter(|b| !b.is_zero())
                .map(|b| m.as_secs_f64() / b.as_secs_f64());
            t.row(
                label,
                &c.name,
                match ratio {
                    Some(r) => format!("{} (p90 {}) = **{r:.2}x** baseline", ms(m), ms(p)),
                    None => format!("{} (p90 {})", ms(m), ms(p)),
                },
                "<= 1.3x baseline",
                ratio.map(|r| r <= COLD_START_RATIO),
            );
        }
    };
    let n = results.runs;
    cold_rows(
        &mut t,
        &format!("cold start: exec -> first /next, median of {n}"),
        |c| c.init.clone(),
    );
    cold_rows(
        &mut t,
        &format!("cold start: exec -> first response to a duplicate, median of {n}"),
        |c| c.duplicate.clone(),
    );
    cold_rows(
        &mut t,
        &format!(
            "cold start: exec -> first response to a duplicate, without moto's answer time, median of {n}"
        ),
        |c| {
            c.duplicate
                .iter()
                .zip(&c.moto)
                .map(|(d, m)| d.saturating_sub(*m))
                .collect()
        },
    );
    for c in results.cold.iter().filter(|c| c.name != BASELINE) {
        let (low, high) = (
            c.moto_requests.iter().copied().min().unwrap_or_default(),
            c.moto_requests.iter().copied().max().unwrap_or_default(),
        );
        t.row(
            "requests to moto per duplicate, real binary (all runs)",
            &c.name,
            if low == high {
                format!("{high}")
            } else {
                format!("{low} to {high}")
            },
            "1 (the DynamoDB claim)",
            Some(low == 1 && high == 1),
        );
    }
    for c in &results.cold {
        let peak = c.rss_kib.iter().copied().max().unwrap_or_default();
        t.row(
            "peak RSS after a duplicate (cold)",
            &c.name,
            format!("{:.1} MiB", mib(peak as f64 * 1024.0)),
            "-",
            None,
        );
    }
    for m in &results.memory {
        let value = mib(m.peak_rss_kib as f64 * 1024.0);
        let retried = if m.retried > 0 {
            format!(
                ", {} records retried (one step per organization)",
                m.retried
            )
        } else {
            String::new()
        };
        t.row(
            "peak RSS, SQS batch of 10 new accounts",
            &m.name,
            format!("{value:.1} MiB{retried}"),
            if m.name == BASELINE {
                "reference"
            } else {
                "< 32 MiB"
            },
            (m.name != BASELINE).then_some(value < RSS_LIMIT_MIB),
        );
    }
    for p in &results.packages {
        let value = mib(p.zip_bytes as f64);
        t.row(
            &format!("zip size ({}, {})", p.arch, p.source),
            &p.name,
            format!(
                "{value:.2} MiB (bootstrap {:.2} MiB)",
                mib(p.binary_bytes as f64)
            ),
            "<= 6 MiB",
            Some(value <= ZIP_LIMIT_MIB),
        );
    }
    for r in &results.requests {
        let name = r.function.name();
        let cost = |c: &Cost| format!("{} DynamoDB / {} create", c.dynamodb, c.creates);
        t.row(
            "requests per delivery: new step",
            name,
            cost(&r.new_step),
            "<= 3 DynamoDB writes (claim, outcome + its announcement, announcement marked \
             sent), 1 create (+ readiness checks); a provider also reads its account's \
             departure mark",
            Some(r.new_step.dynamodb <= new_step_requests(r.function) && r.new_step.creates == 1),
        );
        t.row(
            "requests per delivery: duplicate of a ready step",
            name,
            cost(&r.duplicate),
            "1 DynamoDB, 0 creates",
            Some(r.duplicate.dynamodb == 1 && r.duplicate.creates == 0),
        );
        t.row(
            "50 concurrent duplicates of a ready step (total)",
            name,
            format!(
                "{}; {} acked",
                cost(&r.concurrent_duplicates),
                r.concurrent_duplicates.acked
            ),
            "50 DynamoDB, 0 creates",
            Some(
                r.concurrent_duplicates.dynamodb == 50
                    && r.concurrent_duplicates.creates == 0
                    && r.concurrent_duplicates.acked == 50,
            ),
        );
        t.row(
            "50 concurrent first deliveries of one new step (total)",
            name,
            format!(
                "{}; {} acked, {} told to retry",
                cost(&r.concurrent_new),
                r.concurrent_new.acked,
                r.concurrent_new.retried
            ),
            "1 create; the others retry or ack",
            Some(r.concurrent_new.creates == 1),
        );
    }
    for b in &results.batches {
        let (one, ten) = (median(&b.one), median(&b.ten));
        let (moto_one, moto_ten) = (median(&b.moto_one), median(&b.moto_ten));
        let ratio = |ten: Duration, one: Duration| {
            if one.is_zero() {
                f64::INFINITY
            } else {
                ten.as_secs_f64() / one.as_secs_f64()
            }
        };
        let r = ratio(ten, one);
        t.row(
            &format!(
                "SQS batch of 10 distinct accounts vs 1 record, +{} ms per create, median of {}",
                b.latency.as_millis(),
                b.one.len()
            ),
            b.function.name(),
            format!(
                "{} / {} = **{r:.2}x** (moto busy {} / {})",
                ms(ten),
                ms(one),
                ms(moto_ten),
                ms(moto_one)
            ),
            "<= 1.5x",
            Some(r <= BATCH_RATIO),
        );
        t.row(
            "the same: records in flight at once (peak requests waiting on moto; on the emulator)",
            b.function.name(),
            format!("{}; {}", b.moto_peak, b.emulator_peak),
            "10 (every record at once)",
            Some(b.moto_peak >= 10),
        );
    }

    let mut out = String::new();
    let _ = writeln!(out, "{}", machine.describe());
    let _ = writeln!(out);
    let _ = writeln!(out, "| measure | function | measured | target | result |");
    let _ = writeln!(out, "|---|---|---|---|---|");
    for [a, b, c, d, e] in &t.rows {
        let _ = writeln!(out, "| {a} | {b} | {c} | {d} | {e} |");
    }
    (out, t.misses)
}

/// Where and when the figures were taken.
pub struct Machine {
    pub date: String,
    pub arch: String,
    pub cpu: String,
    pub cores: usize,
    pub load: String,
    pub build: String,
}

impl Machine {
    pub fn probe(build: String) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".into());
        let arch = std::process::Command::new("uname")
            .arg("-m")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let load = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        Machine {
            date: utc_now(),
            arch,
            cpu,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            load,
            build,
        }
    }

    fn describe(&self) -> String {
        format!(
            "Measured {} on {} ({}, {} cores; load average {} at the start). {}",
            self.date, self.arch, self.cpu, self.cores, self.load, self.build
        )
    }
}

/// `YYYY-MM-DD HH:MM UTC`, from the system clock.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3_600,
        (rem % 3_600) / 60
    )
}

/// DynamoDB requests a new step may cost: the claim, the outcome recorded with its
/// announcement, the announcement marked sent; the provider step (keyed further than its
/// account) first reads its account's departure mark.
fn new_step_requests(function: Function) -> u64 {
    match function {
        Function::WebIdentityProvider => 4,
        _ => 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_and_p90_of_twenty() {
        let v = ms(&(1..=20).rev().collect::<Vec<_>>());
        assert_eq!(median(&v), Duration::from_micros(10_500));
        assert_eq!(p90(&v), Duration::from_millis(18));
        assert_eq!(median(&ms(&[3, 1, 2])), Duration::from_millis(2));
        assert_eq!(p90(&[]), Duration::ZERO);
    }

    #[test]
    fn the_date_is_a_utc_date() {
        let d = utc_now();
        assert_eq!(d.len(), "2026-11-22 09:18 UTC".len(), "{d}");
        assert!(d.starts_with("20"), "{d}");
    }
}
