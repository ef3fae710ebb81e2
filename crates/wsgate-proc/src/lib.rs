//! Processes that die with their owner: children that lead or join one process group, each
//! started with a parent-death signal, and stopped by killing the whole group, so that nothing
//! outlives the owner, not even a child whose leader was killed first.
//!
//! The parent-death signal is tied to the thread that forks: spawn from a thread that lives as
//! long as the processes should (not a short-lived blocking-pool thread).

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use wsgate_wait::{Check, Wait};

/// How long a stopping process gets before its group is killed.
pub const STOP_DEADLINE: Duration = Duration::from_secs(3);

/// Sets `cmd` to start in process group `pgid` (`0`: a new group it leads), with SIGTERM as
/// its parent-death signal (a process that cleans up after itself, as nginx's master does).
pub fn in_group(cmd: &mut Command, pgid: u32) -> &mut Command {
    in_group_dying_by(cmd, pgid, libc::SIGTERM)
}

/// [`in_group`] with `sig` as the parent-death signal: SIGKILL for a process whose graceful
/// exit can take long once what it depends on is gone (an API server without its etcd).
pub fn in_group_dying_by(cmd: &mut Command, pgid: u32, sig: libc::c_int) -> &mut Command {
    cmd.process_group(pgid as i32);
    // SAFETY: prctl is async-signal-safe. If the owning thread dies without stopping the child
    // (killed by a timeout, or SIGKILL), the kernel sends it `sig`.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Sends `sig` to one process.
pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) with a pid we spawned; no memory is involved.
    unsafe {
        libc::kill(pid as libc::pid_t, sig);
    }
}

/// SIGKILL to every process of group `pgid`.
pub fn kill_group(pgid: u32) {
    // SAFETY: as above; the negative pid addresses the group. The kernel does not reuse a pid
    // while a process group of that id still has members.
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

/// SIGTERM to `child` when it still runs, then up to `deadline` for it to exit.
pub fn terminate(child: &mut Child, deadline: Duration) {
    if matches!(child.try_wait(), Ok(None)) {
        signal(child.id(), libc::SIGTERM);
        let _ = Wait::new("a process to exit after SIGTERM", deadline)
            .every(Duration::from_millis(10))
            .until_blocking(|| match child.try_wait() {
                Ok(None) => Check::Pending("running"),
                _ => Check::Done(()),
            });
    }
}

/// Kills group `pgid` and returns once none of its processes is alive (at most
/// [`STOP_DEADLINE`]); `children` are reaped.
pub fn kill_group_and_wait(pgid: u32, children: &mut [&mut Child]) {
    kill_group(pgid);
    for c in children.iter_mut() {
        let _ = c.wait();
    }
    let _ = Wait::new("a process group to be empty", STOP_DEADLINE)
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

/// Stops a group leader: SIGTERM, up to [`STOP_DEADLINE`] to exit, then SIGKILL to the whole
/// group, even when the leader is already gone, so that orphans die too.
pub fn stop(child: &mut Child) {
    let pgid = child.id();
    terminate(child, STOP_DEADLINE);
    kill_group_and_wait(pgid, &mut [child]);
}

/// How a child ended, if it has.
pub fn exited(child: &mut Child) -> Option<ExitStatus> {
    child.try_wait().ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_is_empty_once_stopped_even_with_a_child_that_ignores_sigterm() {
        let mut leader = Command::new("sh");
        leader.args(["-c", "trap '' TERM; sleep 30 & wait"]);
        let mut child = in_group(&mut leader, 0).spawn().unwrap();
        let pgid = child.id();
        Wait::new("the shell and its sleep", Duration::from_secs(5))
            .every(Duration::from_millis(10))
            .until_blocking(|| {
                if group_members(pgid).len() >= 2 {
                    Check::Done(())
                } else {
                    Check::Pending("starting")
                }
            })
            .unwrap();
        stop(&mut child);
        assert_eq!(group_members(pgid), Vec::<u32>::new());
    }
}
