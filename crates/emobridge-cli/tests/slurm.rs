//! `emobridge slurm` against a real single-node Slurm cluster started here: munged, slurmctld and
//! slurmd on localhost with a generated `slurm.conf` (state and spool folders in a temporary
//! folder), as root without systemd.
//!
//! One test, in order: 4 extraction shards over the synthetic corpus give the cache a single
//! process gives; a cancelled array element (`scancel JOB_2`) and `--resubmit` complete the cache
//! without redoing finished clips; the FAD study run as an array equals the single-process study
//! to 1e-12.
//!
//! Where Slurm cannot start (no Slurm or munge installed, not root), the test prints why and
//! returns without checking anything (a skip, not a pass); under `CI=true` it fails instead.
//! `.ci/run` installs Debian's `slurm-wlm` and `munge` first.

mod common;

use common::tiny_model;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_emobridge");

/// A single-node cluster whose daemons this test started; stopped (by pid) on drop.
struct LocalCluster {
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// (name, child) of every daemon started here, in start order.
    daemons: Vec<(&'static str, Child)>,
}

impl LocalCluster {
    /// Starts munged (unless one already answers), slurmctld and slurmd; `Err` says why not.
    fn start() -> Result<LocalCluster, String> {
        for tool in [
            "munged",
            "munge",
            "slurmctld",
            "slurmd",
            "sbatch",
            "squeue",
            "sinfo",
            "scancel",
            "scontrol",
        ] {
            which(tool).ok_or_else(|| {
                format!("`{tool}` is not installed (Debian: apt-get install slurm-wlm munge)")
            })?;
        }
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| format!("id -u: {e}"))?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("the daemons of a local cluster need root".into());
        }
        let dir = tempfile::Builder::new()
            .prefix("emobridge-slurm-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let mut cluster = LocalCluster {
            conf: dir.path().join("slurm.conf"),
            dir,
            daemons: Vec::new(),
        };
        cluster.start_munge()?;
        let host = capture(Command::new("hostname").arg("-s"))?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let d = cluster.dir.path().to_path_buf();
        for sub in ["state", "spool", "log"] {
            std::fs::create_dir_all(d.join(sub)).map_err(|e| e.to_string())?;
        }
        let (ctld_port, d_port) = (free_port()?, free_port()?);
        // slurmd drains a node that has less memory than slurm.conf claims: claim 90 % of it.
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                let kb: u64 = m
                    .lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .ok()?;
                Some(kb / 1024 * 9 / 10)
            })
            .unwrap_or(1000)
            .min(20000);
        let conf = format!(
            "ClusterName=emobridge-test\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\n\
             AuthType=auth/munge\nProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n\
             JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n\
             SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n\
             MpiDefault=none\nSchedulerParameters=sched_interval=1\n\
             StateSaveLocation={d}/state\nSlurmdSpoolDir={d}/spool\n\
             SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
             SlurmctldPort={ctld_port}\nSlurmdPort={d_port}\n\
             NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN\n\
             PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n",
            d = d.display()
        );
        std::fs::write(&cluster.conf, conf).map_err(|e| e.to_string())?;
        for daemon in ["slurmctld", "slurmd"] {
            let child = Command::new(which(daemon).expect("checked"))
                .args(["-D", "-f"])
                .arg(&cluster.conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{daemon}: {e}"))?;
            cluster.daemons.push((daemon, child));
        }
        // Ready when the node is idle.
        let started = Instant::now();
        loop {
            let out = cluster.client("sinfo").args(["-h", "-o", "%T"]).output();
            if let Ok(o) = &out {
                if String::from_utf8_lossy(&o.stdout).trim() == "idle" {
                    return Ok(cluster);
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                let log = std::fs::read_to_string(d.join("log/slurmctld.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!(
                    "the node did not become idle within 60 s; slurmctld log ends: {tail:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// munged as user `munge` with the system key (created when absent), unless one answers.
    fn start_munge(&mut self) -> Result<(), String> {
        let answers = || {
            Command::new("munge")
                .arg("-n")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if answers() {
            return Ok(());
        }
        let (uid, gid) = munge_ids()?;
        let key = Path::new("/etc/munge/munge.key");
        if !key.exists() {
            std::fs::create_dir_all("/etc/munge").map_err(|e| e.to_string())?;
            run_ok(Command::new("mungekey").args(["-c", "-k"]).arg(key))?;
        }
        run_ok(Command::new("chown").arg(format!("{uid}:{gid}")).arg(key))?;
        run_ok(Command::new("chmod").arg("400").arg(key))?;
        for d in ["/run/munge", "/var/lib/munge", "/var/log/munge"] {
            std::fs::create_dir_all(d).map_err(|e| e.to_string())?;
            run_ok(Command::new("chown").arg(format!("{uid}:{gid}")).arg(d))?;
        }
        use std::os::unix::process::CommandExt;
        // Slurm's docs advise more munged threads than its default 2 for a controller; with 2,
        // squeue calls on a loaded machine fail with "If munged is up, restart with
        // --num-threads=10".
        let child = Command::new(which("munged").expect("checked"))
            .args(["-F", "--num-threads=10"])
            .uid(uid)
            .gid(gid)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("munged: {e}"))?;
        self.daemons.push(("munged", child));
        let started = Instant::now();
        while !answers() {
            if started.elapsed() > Duration::from_secs(15) {
                return Err("munged did not answer within 15 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Ok(())
    }

    /// A Slurm client command pointed at this cluster.
    fn client(&self, tool: &str) -> Command {
        let mut c = Command::new(tool);
        c.env("SLURM_CONF", &self.conf);
        c
    }

    /// `emobridge ARGS` with this cluster's SLURM_CONF.
    fn emobridge(&self, cwd: &Path, args: &[&str]) -> Output {
        let out = self
            .client(BIN)
            .current_dir(cwd)
            .args(args)
            .output()
            .expect("run emobridge");
        eprintln!(
            "$ emobridge {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        // Stop by pid, the last started first; SIGTERM, then SIGKILL after 10 s.
        for (name, child) in self.daemons.iter_mut().rev() {
            // SAFETY: kill(2) on the pid of a child this process spawned and has not reaped.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let started = Instant::now();
            loop {
                match child.try_wait() {
                    Ok(Some(_)) => break,
                    _ if started.elapsed() > Duration::from_secs(10) => {
                        eprintln!("{name} ignored SIGTERM; killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(100)),
                }
            }
        }
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    // Daemons live in sbin, which a non-login PATH may lack.
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(tool)).find(|p| p.is_file())
}

fn capture(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn run_ok(cmd: &mut Command) -> Result<(), String> {
    capture(cmd).map(|_| ())
}

fn munge_ids() -> Result<(u32, u32), String> {
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    passwd
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&"munge") && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
        .ok_or_else(|| "no `munge` user (the munge package creates it)".into())
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Tensors (name → dtype, shape, bytes) and metadata of one cache entry.
type Entry = (
    BTreeMap<String, (String, Vec<usize>, Vec<u8>)>,
    BTreeMap<String, String>,
);

fn read_entry(path: &Path) -> Entry {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let tensors = st
        .iter()
        .map(|(n, t)| {
            (
                n.to_string(),
                (
                    format!("{:?}", t.dtype()),
                    t.shape().to_vec(),
                    t.data().to_vec(),
                ),
            )
        })
        .collect();
    let meta = meta
        .metadata()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    (tensors, meta)
}

/// Entries of a cache folder (clip id → modification time).
fn entries(dir: &Path) -> BTreeMap<String, std::time::SystemTime> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_suffix(".safetensors")?.to_string();
            Some((id, e.metadata().ok()?.modified().ok()?))
        })
        .collect()
}

fn fad_values(run: &Path, file: &str) -> Vec<(String, f64)> {
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(run.join(file)).unwrap()).unwrap();
    rows.iter()
        .map(|r| {
            let key = ["layer", "family", "comparison", "emotion", "row", "col"]
                .iter()
                .filter_map(|k| r.get(*k).map(|v| v.to_string()))
                .collect::<Vec<_>>()
                .join("/");
            (key, r["fad"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn job_arrays_on_a_real_single_node_slurm() {
    let cluster = match LocalCluster::start() {
        Ok(c) => c,
        Err(why) => {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but a local Slurm cannot start: {why}");
            }
            eprintln!("SKIPPED (not passed): a local Slurm cannot start here: {why}");
            return;
        }
    };
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let model = tiny_model();
    let model = model.to_str().unwrap();
    ok(&cluster.emobridge(
        w,
        &[
            "synth",
            "--out",
            "corpus",
            "--clips-per-cell",
            "1",
            "--people",
            "2",
            "--continuous",
            "0",
        ],
    ));
    let manifest = "corpus/manifest.csv";
    let tag = "mert_like_24k";

    // The reference: one process.
    ok(&cluster.emobridge(
        w,
        &[
            "extract",
            "--manifest",
            manifest,
            "--model",
            model,
            "--cache",
            "single",
        ],
    ));
    let reference = entries(&w.join("single").join(tag));
    assert!(reference.len() >= 8, "{} clips", reference.len());

    // 4 shards, held at submission so that element 2 is cancelled before it can run.
    let extract = [
        "extract",
        "--manifest",
        manifest,
        "--model",
        model,
        "--cache",
        "sharded",
    ];
    let slurm = |extra: &[&str]| {
        let mut a = vec!["slurm"];
        a.extend(extract);
        a.extend(["--tasks", "4", "--poll-s", "0.5"]);
        a.extend(extra);
        cluster.emobridge(w, &a)
    };
    let job = ok(&slurm(&["--sbatch-arg=--hold"])).trim().to_string();
    assert!(
        job.chars().all(|c| c.is_ascii_digit()) && !job.is_empty(),
        "job id `{job}`"
    );
    // While the array is queued, --resubmit is refused.
    let early = slurm(&["--resubmit"]);
    assert!(!early.status.success());
    assert!(String::from_utf8_lossy(&early.stderr)
        .contains(&format!("job {job} still has tasks queued or running")));
    run_ok(cluster.client("scancel").arg(format!("{job}_2"))).unwrap();
    run_ok(cluster.client("scontrol").args(["release", &job])).unwrap();
    std::env::set_var("SLURM_CONF", &cluster.conf);
    emobridge_slurm::wait(&job, Duration::from_millis(500), &|_| {}).unwrap();

    let slurm_dir = w.join("sharded").join(tag).join("slurm");
    for task in [0, 1, 3] {
        let log = slurm_dir
            .join("logs")
            .join(format!("emobridge-extract-{job}_{task}.log"));
        let text =
            std::fs::read_to_string(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        assert!(text.contains(&format!("shard {task}/4")), "{text}");
    }
    assert!(!slurm_dir
        .join("logs")
        .join(format!("emobridge-extract-{job}_2.log"))
        .exists());
    // The check names shard 2 as incomplete and fails.
    let check = slurm(&["--merge"]);
    assert!(!check.status.success());
    assert!(String::from_utf8_lossy(&check.stderr).contains("shards [2] of 4 are incomplete"));
    let before = entries(&w.join("sharded").join(tag));
    assert!(
        before.len() < reference.len(),
        "shard 2 must own some clips"
    );

    // Resubmit: only task 2 runs; the clips already cached are not touched.
    std::thread::sleep(Duration::from_millis(1100)); // so a rewrite would change the mtime
    ok(&slurm(&["--resubmit", "--wait"]));
    let jobs = emobridge_slurm::read_jobs(&slurm_dir).unwrap();
    assert_eq!(jobs.len(), 2);
    assert_eq!(jobs[1].tasks, vec![2]);
    let after = entries(&w.join("sharded").join(tag));
    for (id, t) in &before {
        assert_eq!(after[id], *t, "{id} was extracted again");
    }
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>()
    );
    for id in reference.keys() {
        let file = format!("{id}.safetensors");
        assert_eq!(
            read_entry(&w.join("single").join(tag).join(&file)),
            read_entry(&w.join("sharded").join(tag).join(&file)),
            "{id}: tensors or metadata differ"
        );
    }
    assert!(w.join("sharded").join(tag).join("failures.json").is_file());
    assert!(slurm_dir.join("verify.json").is_file());

    // The FAD study: one process on the single-process cache vs a 4-task array on the sharded
    // cache, merged from per-shard statistics.
    let study = [
        "--manifest",
        manifest,
        "--model",
        tag,
        "--no-plots",
        "--layers",
        "0,2",
    ];
    let mut one = vec!["fad", "--cache", "single"];
    one.extend(study);
    one.extend(["--out", "fad-one"]);
    ok(&cluster.emobridge(w, &one));
    let mut array = vec!["slurm", "fad", "--cache", "sharded"];
    array.extend(study);
    array.extend([
        "--out",
        "fad-array",
        "--tasks",
        "4",
        "--wait",
        "--poll-s",
        "0.5",
    ]);
    ok(&cluster.emobridge(w, &array));
    for file in ["speech_vs_music.json", "pairs.json"] {
        let (a, b) = (
            fad_values(&w.join("fad-one"), file),
            fad_values(&w.join("fad-array"), file),
        );
        assert_eq!(a.len(), b.len(), "{file}");
        assert!(!a.is_empty(), "{file}");
        let worst = a
            .iter()
            .zip(&b)
            .map(|((_, x), (_, y))| (x - y).abs())
            .fold(0.0, f64::max);
        eprintln!(
            "{file}: {} distances, largest |single - array| {worst:e}",
            a.len()
        );
        for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
            assert_eq!(ka, kb);
            assert!(
                (va - vb).abs() <= 1e-12 * va.abs().max(1.0),
                "{file} {ka}: {va} vs {vb}"
            );
        }
    }
    for task in 0..4 {
        assert!(w
            .join(format!("fad-array/shards/shard-{task}-of-4/done.json"))
            .is_file());
    }

    // Descriptors: 3 shards of the manifest, merged into the table one process writes.
    let features = [
        "--set",
        "egemaps",
        "--level",
        "functionals",
        "--manifest",
        manifest,
    ];
    let mut one = vec!["features"];
    one.extend(features);
    one.extend(["--out", "egemaps-one.csv"]);
    ok(&cluster.emobridge(w, &one));
    let mut array = vec!["slurm", "features"];
    array.extend(features);
    array.extend([
        "--out",
        "egemaps-array.csv",
        "--tasks",
        "3",
        "--wait",
        "--poll-s",
        "0.5",
    ]);
    ok(&cluster.emobridge(w, &array));
    assert_eq!(
        std::fs::read_to_string(w.join("egemaps-one.csv")).unwrap(),
        std::fs::read_to_string(w.join("egemaps-array.csv")).unwrap()
    );

    // The probe runs as one task, and refuses to be split.
    let probe = [
        "slurm",
        "probe",
        "--manifest",
        manifest,
        "--cache",
        "sharded",
        "--model",
        tag,
        "--out",
        "probe",
    ];
    let mut split = probe.to_vec();
    split.extend(["--tasks", "2"]);
    let refused = cluster.emobridge(w, &split);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("runs as one task"));
    let mut one = probe.to_vec();
    one.extend(["--tasks", "1", "--wait", "--poll-s", "0.5"]);
    ok(&cluster.emobridge(w, &one));
    assert!(w.join("probe/transfer_matrix.csv").is_file());
    drop(cluster);
}
