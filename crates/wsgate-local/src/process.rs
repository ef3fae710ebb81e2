//! nginx as a child process in its own process group: started with a parent-death signal,
//! stopped by killing the whole group, so that no worker outlives it, not even an orphan.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use wsgate_wait::{Check, Wait};

/// How long a stopping nginx gets before its group is killed.
pub const STOP_DEADLINE: Duration = Duration::from_secs(3);

/// The nginx command line for a prefix and config (`-e`: without it nginx first opens the
/// compiled-in /var/log/nginx/error.log).
pub(crate) fn base_command(bin: &Path, prefix: &Path, conf: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(conf)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .stdin(Stdio::null());
    cmd
}

/// Starts nginx in the foreground, leading its own process group.
pub(crate) fn spawn(bin: &Path, prefix: &Path, conf: &Path) -> std::io::Result<Child> {
    let mut cmd = base_command(bin, prefix, conf);
    cmd.args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // Own process group, so that stopping reaches the workers too.
    cmd.process_group(0);
    // SAFETY: prctl is async-signal-safe. If the owning thread dies without running Drop
    // (killed by a timeout), the kernel sends nginx's master SIGTERM, and the master takes its
    // workers down with it.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

fn kill_group(pgid: u32) {
    // SAFETY: as above; the negative pid addresses the process group nginx leads. The kernel
    // does not reuse a pid while a process group of that id still has members.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), libc::SIGKILL);
    }
}

/// The live (not zombie) processes of process group `pgid`, from `/proc`.
pub fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // After the parenthesised command: state, ppid, pgrp.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<u32>().ok());
            pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
        })
        .collect()
}

/// Stops nginx: SIGTERM to the master (fast shutdown) when it is still running, then SIGKILL
/// to the whole group after [`STOP_DEADLINE`], even when the master is already gone, so that
/// orphaned workers die too. Returns once no process of the group is alive.
pub(crate) fn stop(child: &mut Child) {
    let pgid = child.id();
    if matches!(child.try_wait(), Ok(None)) {
        signal(pgid, libc::SIGTERM);
        let _ = Wait::new("nginx to exit after SIGTERM", STOP_DEADLINE)
            .every(Duration::from_millis(10))
            .until_blocking(|| match child.try_wait() {
                Ok(None) => Check::Pending("running"),
                _ => Check::Done(()),
            });
    }
    kill_group(pgid);
    let _ = child.wait();
    let _ = Wait::new("nginx's process group to be empty", STOP_DEADLINE)
        .every(Duration::from_millis(10))
        .until_blocking(|| {
            let left = group_members(pgid);
            if left.is_empty() {
                Check::Done(())
            } else {
                Check::Pending(format!("{left:?}"))
            }
        });
}

/// How a child ended, if it has.
pub(crate) fn exited(child: &mut Child) -> Option<ExitStatus> {
    child.try_wait().ok().flatten()
}
