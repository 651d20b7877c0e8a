//! Kamailio (Debian package `kamailio`) as the SIP registrar and proxy of a test: started on 127.0.0.1
//! with a generated configuration that authenticates REGISTER and INVITE by digest against the users a
//! test names, keeps registrations in memory, record-routes calls and relays them to registered users,
//! over UDP and TCP on one port.

use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A running Kamailio, killed with all its worker processes when dropped.
pub struct Kamailio {
    child: Child,
    pub addr: SocketAddr,
    /// Kamailio's own log (errors and notices).
    pub log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // Kamailio forks its workers; they share its process group (its own, see `start`).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP.
pub fn free_port_both() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no port free for both UDP and TCP on 127.0.0.1")
}

/// Registers `ua`, retrying while Kamailio starts up (up to 20 tries of 700 ms).
pub async fn register(ua: &sip::ua::UserAgent) -> Result<u32, sip::Error> {
    for _ in 0..20 {
        if let Ok(r) =
            tokio::time::timeout(std::time::Duration::from_millis(700), ua.register()).await
        {
            return r;
        }
    }
    Err(sip::Error::RegistrarTimeout(SocketAddr::from((
        [127, 0, 0, 1],
        0,
    ))))
}

/// The kamailio binary, if installed.
pub fn binary() -> Option<&'static str> {
    [
        "/usr/sbin/kamailio",
        "/usr/bin/kamailio",
        "/usr/local/sbin/kamailio",
    ]
    .into_iter()
    .find(|p| Path::new(p).exists())
}

impl Kamailio {
    /// Starts Kamailio for `users` (user, password). `Ok(None)` when it is not installed and
    /// FAXHUB_SLOW_TESTS is not set (the test skips); an error when it is set.
    pub fn start(users: &[(&str, &str)]) -> anyhow::Result<Option<Self>> {
        let Some(bin) = binary() else {
            if crate::gate::slow_tests() {
                bail!("FAXHUB_SLOW_TESTS=1 but kamailio is not installed");
            }
            return Ok(None);
        };
        let port = free_port_both()?;
        let dir = tempfile::tempdir()?;
        let passwords: String = users
            .iter()
            .map(|(u, p)| format!("    if ($fU == \"{u}\") {{ $var(pw) = \"{p}\"; }}\n"))
            .collect();
        let cfg = format!(
            r#"#!KAMAILIO
debug=1
log_stderror=yes
children=4
tcp_children=2
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("rr", "enable_full_lr", 1)

route[PASSWORD] {{
    $var(pw) = "";
{passwords}}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("OPTIONS") && $rU == $null) {{ sl_send_reply("200", "OK"); exit; }}
    route(PASSWORD);
    if (is_method("REGISTER|INVITE")) {{
        if (!pv_auth_check("$fd", "$var(pw)", "0", "1")) {{ auth_challenge("$fd", "1"); exit; }}
        consume_credentials();
    }}
    if (is_method("REGISTER")) {{
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (is_method("INVITE")) {{ record_route(); }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"#
        );
        let path = dir.path().join("kamailio.cfg");
        std::fs::write(&path, cfg)?;
        let check = Command::new(bin)
            .arg("-c")
            .arg("-f")
            .arg(&path)
            .output()
            .context("running kamailio -c")?;
        if !check.status.success() {
            bail!(
                "kamailio rejects its configuration: {}",
                String::from_utf8_lossy(&check.stderr)
            );
        }
        let log = dir.path().join("kamailio.log");
        let child = Command::new(bin)
            .arg("-f")
            .arg(&path)
            .args(["-DD", "-E", "-m", "256", "-M", "16", "-Y"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .process_group(0)
            .spawn()
            .context("starting kamailio")?;
        Ok(Some(Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            _dir: dir,
        }))
    }
}
