//! deploy/INSTALL.md followed step by step on a fresh copy of this machine (issue 9's "done
//! when"): `deploy/follow-install.sh` runs each command the guide gives, word for word, in
//! overlays and network namespaces of its own, starts the daemon as the systemd unit would,
//! and checks a running, signed (verified by dkimpy against the DNS records), observable site.

use std::process::Command;

use crate::support::{bin, require, transcript};

#[test]
fn following_install_md_gives_a_running_signed_observable_site() {
    for tool in ["unshare", "nsenter", "setpriv", "dnsmasq", "smtp-sink", "swaks", "openssl", "curl", "jq", "dkimverify"] {
        require(tool);
    }
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/follow-install.sh");
    let out = Command::new("bash").arg(&script).arg(bin()).output().unwrap();
    let text = transcript(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("followed INSTALL.md: a running, signed, observable site"), "{text}");
}
