//! Medians over rounds, the Markdown table (scenario × server, ratios to tandem) and the raw JSON.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::peers::Kind;
use crate::scenarios::Figures;

#[derive(Debug, Serialize)]
pub struct Sample {
    pub server: Kind,
    pub scenario: String,
    pub round: usize,
    pub figures: Figures,
}

impl Sample {
    pub fn new(server: Kind, scenario: &str, round: usize, figures: Figures) -> Sample {
        Sample {
            server,
            scenario: scenario.to_string(),
            round,
            figures,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Run {
    pub date: String,
    pub quick: bool,
    pub machine: BTreeMap<String, String>,
    pub samples: Vec<Sample>,
    pub notes: Vec<String>,
    pub generator_cpu_s: f64,
    pub wall_s: f64,
}

fn machine() -> BTreeMap<String, String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kb = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let node = std::process::Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    BTreeMap::from([
        ("cpu".into(), model),
        ("cores".into(), cores.to_string()),
        (
            "memory_gib".into(),
            format!("{:.1}", mem_kb as f64 / 1048576.0),
        ),
        ("node".into(), node),
    ])
}

fn today() -> String {
    std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "undated".into())
}

/// Whether a larger figure is better (for the ratio's wording).
fn higher_is_better(metric: &str) -> bool {
    metric.ends_with("per_s") || metric.ends_with("per_gib") || metric == "updates"
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

impl Run {
    pub fn new(quick: bool) -> Run {
        Run {
            date: today(),
            quick,
            machine: machine(),
            samples: Vec::new(),
            notes: Vec::new(),
            generator_cpu_s: 0.0,
            wall_s: 0.0,
        }
    }

    /// Keeps a sample, or notes why a scenario produced none (the run goes on).
    pub fn record(&mut self, sample: anyhow::Result<Sample>) {
        match sample {
            Ok(s) => self.samples.push(s),
            Err(e) => {
                eprintln!("scenario failed: {e:#}");
                self.notes.push(format!("FAILED: {e:#}"));
            }
        }
    }

    /// scenario → metric → server → median.
    fn medians(&self) -> BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, f64>>> {
        let mut raw: BTreeMap<(String, String, &'static str), Vec<f64>> = BTreeMap::new();
        for s in &self.samples {
            for (metric, value) in &s.figures {
                raw.entry((s.scenario.clone(), metric.clone(), s.server.name()))
                    .or_default()
                    .push(*value);
            }
        }
        let mut out: BTreeMap<String, BTreeMap<String, BTreeMap<&'static str, f64>>> =
            BTreeMap::new();
        for ((scenario, metric, server), values) in raw {
            out.entry(scenario)
                .or_default()
                .entry(metric)
                .or_default()
                .insert(server, median(values));
        }
        out
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# tandem benchmark, {}{}\n\nCommand: `bench/run{}` · machine: {} ({} cores), {} GiB RAM, Node {} · wall time {:.0} s · load generator CPU {:.0} s in total\n\n",
            self.date,
            if self.quick { " (quick mode: sizes too small to compare)" } else { "" },
            if self.quick { " --quick" } else { "" },
            self.machine.get("cpu").map_or("?", String::as_str),
            self.machine.get("cores").map_or("?", String::as_str),
            self.machine.get("memory_gib").map_or("?", String::as_str),
            self.machine.get("node").map_or("?", String::as_str),
            self.wall_s,
            self.generator_cpu_s,
        );
        md.push_str("Medians over rounds. `×` is the peer's figure relative to tandem's (for latency and memory, above 1× means tandem is better; for rates, below 1× means tandem is better). `generator_cpu_share` is the load generator's CPU time over the scenario's wall time (1.0 = one core busy): well under the machine's cores means the generator was not the bottleneck.\n\n");
        md.push_str(
            "| scenario | metric | tandem | tandem via Hocuspocus | y-websocket | hocuspocus |\n|---|---|---|---|---|---|\n",
        );
        for (scenario, metrics) in self.medians() {
            for (metric, servers) in metrics {
                let t = servers.get("tandem").copied();
                let cell = |name: &str| -> String {
                    match servers.get(name) {
                        None => "n/a".into(),
                        Some(v) if name == "tandem" => format!("{v:.2}"),
                        Some(v) => match t {
                            Some(t) if t.abs() > f64::EPSILON && v.is_finite() => {
                                format!("{v:.2} ({:.2}×)", v / t)
                            }
                            _ => format!("{v:.2}"),
                        },
                    }
                };
                let _ = higher_is_better(&metric);
                md.push_str(&format!(
                    "| {scenario} | {metric} | {} | {} | {} | {} |\n",
                    cell("tandem"),
                    cell("tandem-hocuspocus"),
                    cell("y-websocket"),
                    cell("hocuspocus")
                ));
            }
        }
        if !self.notes.is_empty() {
            md.push('\n');
            for n in &self.notes {
                md.push_str(&format!("- {n}\n"));
            }
        }
        md.push_str("\nThe y-websocket server and Hocuspocus run without persistence (their defaults): the cold-load and durable-write scenarios apply to tandem only. \"tandem via Hocuspocus\" is the same tandem binary driven by the Hocuspocus client on `/hocuspocus` (every update also acknowledged with a SyncStatus).\n");
        md
    }

    /// Writes `<date>[-quick].md` and `.json` under `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let stem = if self.quick {
            format!("{}-quick", self.date)
        } else {
            self.date.clone()
        };
        let md = dir.join(format!("{stem}.md"));
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&md, self.markdown())?;
        std::fs::write(&json, serde_json::to_string_pretty(self)?)?;
        Ok((md, json))
    }
}
