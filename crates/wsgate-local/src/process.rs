//! nginx as a child process in its own process group (`wsgate-proc`): started with a
//! parent-death signal, stopped by killing the whole group, so that no worker outlives it, not
//! even an orphan.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

pub use wsgate_proc::{STOP_DEADLINE, group_members, signal};

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

/// Starts nginx in the foreground, leading its own process group. If the owning thread dies
/// without running Drop, nginx's master gets SIGTERM and takes its workers down with it.
pub(crate) fn spawn(bin: &Path, prefix: &Path, conf: &Path) -> std::io::Result<Child> {
    let mut cmd = base_command(bin, prefix, conf);
    cmd.args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    wsgate_proc::in_group(&mut cmd, 0).spawn()
}

/// Stops nginx: SIGTERM to the master (fast shutdown) when it is still running, then SIGKILL
/// to the whole group, even when the master is already gone, so that orphaned workers die too.
pub(crate) fn stop(child: &mut Child) {
    wsgate_proc::stop(child);
}

/// How a child ended, if it has.
pub(crate) fn exited(child: &mut Child) -> Option<ExitStatus> {
    wsgate_proc::exited(child)
}
