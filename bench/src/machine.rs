//! Where the CPU time went while a measurement ran: this process (the in-process stack and any
//! threads of the benchmark), the tools it started (wrk, nginx), a database server it drives, and
//! everything else. On a shared machine (a build running beside the benchmark) one target's numbers
//! can be depressed by work that has nothing to do with it; this says when that happened instead of
//! leaving it to be guessed.

use std::collections::HashMap;
use std::fs;
use std::time::Instant;

/// CPU ticks at one moment: the whole machine's busy time, and this process tree's.
pub struct CpuSnapshot {
    at: Instant,
    /// Busy ticks of all CPUs together, `/proc/stat`'s user, nice, system and steal (time the
    /// hypervisor gave to someone else: noise too).
    machine_busy: u64,
    /// Interrupt ticks of all CPUs (`/proc/stat`'s irq and softirq), which the kernel charges to no
    /// process: on a quiet machine, mostly the benchmark's own network and disk traffic.
    interrupts: u64,
    /// This process, all threads.
    own: u64,
    /// The children this process has reaped (finished wrk runs).
    reaped: u64,
    /// Each live descendant (nginx and its workers, a running wrk), by pid.
    descendants: HashMap<u32, u64>,
    /// Each process of a server counted as the benchmark's own (see [`CpuSnapshot::take_counting`]),
    /// by pid. Per process, so that one ending between two snapshots (a closed connection's
    /// backend) does not take its earlier ticks out of the sum.
    servers: HashMap<u32, u64>,
}

/// Shares of all CPUs (0.0–1.0) over the time between two snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuShares {
    /// This process: the in-process stack, the benchmark's own threads.
    pub own: f64,
    /// The tools it started (wrk, nginx).
    pub tools: f64,
    /// The processes counted as servers: the database server, the kernel's I/O threads.
    pub servers: f64,
    /// Interrupt handling (irq, softirq), charged to no process.
    pub interrupts: f64,
    /// Everything else: noise.
    pub others: f64,
}

impl CpuSnapshot {
    pub fn take() -> Self {
        Self::take_counting(&[])
    }

    /// As [`CpuSnapshot::take`], also counting as the benchmark's every process whose command name is
    /// one of `servers` (or starts with one that ends in `/`, as kernel threads are named): a
    /// database server the benchmark drives (`postgres`) and the kernel threads that carry out its
    /// fsyncs (`kworker/`, `jbd2/`) work for the measurement, they are not noise. (Anything else
    /// using them at the same time is then missed.)
    pub fn take_counting(servers: &[&str]) -> Self {
        let me = std::process::id();
        let processes = processes();
        let descendant = |mut pid: u32| {
            for _ in 0..16 {
                match processes.get(&pid) {
                    Some(stat) if stat.parent == me => return true,
                    Some(stat) if stat.parent > 1 && stat.parent != pid => pid = stat.parent,
                    _ => return false,
                }
            }
            false
        };
        let ticks_of = |keep: &dyn Fn(u32, &ProcessStat) -> bool| -> HashMap<u32, u64> {
            processes
                .iter()
                .filter(|(pid, stat)| **pid != me && keep(**pid, stat))
                .map(|(pid, s)| (*pid, s.ticks))
                .collect()
        };
        let descendants = ticks_of(&|pid, _| descendant(pid));
        let server = |name: &str| servers.iter().any(|s| name == *s || (s.ends_with('/') && name.starts_with(s)));
        let servers = ticks_of(&|pid, stat| !descendant(pid) && server(&stat.name));
        let (own, reaped) = processes.get(&me).map_or((0, 0), |s| (s.ticks, s.reaped_children_ticks));
        let (machine_busy, interrupts) = machine_busy().unwrap_or((0, 0));
        Self { at: Instant::now(), machine_busy, interrupts, own, reaped, descendants, servers }
    }

    /// Where the CPUs' time went since `before`.
    pub fn shares_since(&self, before: &CpuSnapshot) -> CpuShares {
        let grown = |now: &HashMap<u32, u64>, then: &HashMap<u32, u64>| -> u64 {
            now.iter().map(|(pid, ticks)| ticks.saturating_sub(then.get(pid).copied().unwrap_or(0))).sum()
        };
        let own = self.own.saturating_sub(before.own);
        let tools = self.reaped.saturating_sub(before.reaped) + grown(&self.descendants, &before.descendants);
        let servers = grown(&self.servers, &before.servers);
        let busy = self.machine_busy.saturating_sub(before.machine_busy);
        let interrupts = self.interrupts.saturating_sub(before.interrupts);
        let others = busy.saturating_sub(own + tools + servers);
        let wall = self.at.duration_since(before.at).as_secs_f64().max(1e-3);
        let share = |ticks: u64| (ticks as f64 / clock_ticks_per_second() / (wall * cpus() as f64)).clamp(0.0, 1.0);
        CpuShares {
            own: share(own),
            tools: share(tools),
            servers: share(servers),
            interrupts: share(interrupts),
            others: share(others),
        }
    }

    /// The share of all CPUs (0.0–1.0) that processes outside this benchmark used since `before`.
    pub fn others_since(&self, before: &CpuSnapshot) -> f64 {
        self.shares_since(before).others
    }
}

struct ProcessStat {
    /// The command name (`comm`, at most 15 bytes).
    name: String,
    parent: u32,
    /// utime + stime of all its threads.
    ticks: u64,
    /// cutime + cstime: children it has waited for.
    reaped_children_ticks: u64,
}

fn processes() -> HashMap<u32, ProcessStat> {
    let mut processes = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(stat) = fs::read_to_string(entry.path().join("stat")).ok().and_then(|s| parse_stat(&s)) {
                processes.insert(pid, stat);
            }
        }
    }
    processes
}

/// `pid (comm) state ppid … utime stime cutime cstime …`. `comm` may hold spaces and parentheses, so
/// fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<ProcessStat> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let name = stat.get(open + 1..close)?.to_owned();
    let rest = stat.get(close + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<i64>().ok());
    Some(ProcessStat {
        name,
        parent: u32::try_from(number(1)?).ok()?,
        ticks: (number(11)? + number(12)?).max(0) as u64,
        reaped_children_ticks: (number(13)? + number(14)?).max(0) as u64,
    })
}

/// Busy and interrupt ticks (see [`CpuSnapshot`]) from the first line of `/proc/stat`:
/// `cpu user nice system idle iowait irq softirq steal …`.
fn machine_busy() -> Option<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<u64> =
        stat.lines().next()?.split_whitespace().skip(1).take(8).filter_map(|f| f.parse().ok()).collect();
    let [user, nice, system, _idle, _iowait, irq, softirq, steal] = fields[..] else {
        return None;
    };
    Some((user + nice + system + steal, irq + softirq))
}

fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Logical CPUs this process may use (`nproc`).
pub fn cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The CPU model from `/proc/cpuinfo`.
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parent_and_cpu_ticks_past_an_odd_command_name() {
        let stat = "4242 (a (b) c) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 3 0 100 0 0";
        let stat = parse_stat(stat).unwrap();
        assert_eq!((stat.parent, stat.ticks, stat.reaped_children_ticks), (17, 300, 10));
        assert_eq!(stat.name, "a (b) c");
    }
}
