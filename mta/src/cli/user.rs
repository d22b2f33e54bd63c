//! `sipmta user add|rm|passwd|list`.
//!
//! Passwords are never taken from the command line (other users could read them in `ps`): from
//! a terminal they are prompted for twice without echo; otherwise the first line of standard
//! input is the password (`echo secret | sipmta user add alice@example.com`).
//!
//! While the daemon runs the commands go through its admin API, otherwise to the store itself
//! (see [`super::backend`]); the output is the same either way.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use sipmta_store::normalise_name;

use super::backend::Backend;

/// User management.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (usually an address, e.g. alice@example.com); asks for the password.
    Add {
        /// The user name used with AUTH.
        name: String,
    },
    /// Remove a user.
    Rm {
        /// The user name.
        name: String,
    },
    /// Change a user's password; asks for the new one.
    Passwd {
        /// The user name.
        name: String,
    },
    /// List users.
    List,
}

pub fn run(config: Option<&Path>, cmd: UserCommand) -> Result<()> {
    let config = super::load_config(config)?;
    let backend = Backend::open(&config)?;
    execute(&backend, cmd, &mut read_password, &mut std::io::stdout().lock())
}

/// Carry out `cmd`, asking `password` for passwords and printing to `out`.
pub(super) fn execute(
    backend: &Backend,
    cmd: UserCommand,
    password: &mut dyn FnMut() -> Result<String>,
    out: &mut dyn Write,
) -> Result<()> {
    match cmd {
        UserCommand::Add { name } => {
            // Check the name before asking for a password that would be thrown away.
            let key = normalise_name(&name)?;
            backend.add_user(&name, &password()?)?;
            writeln!(out, "added user {key}")?;
        }
        UserCommand::Rm { name } => {
            backend.remove_user(&name)?;
            writeln!(out, "removed user {}", normalise_name(&name)?)?;
        }
        UserCommand::Passwd { name } => {
            if !backend.user_exists(&name)? {
                bail!("no such user: {name}");
            }
            backend.set_password(&name, &password()?)?;
            writeln!(out, "changed password of {}", normalise_name(&name)?)?;
        }
        UserCommand::List => {
            for user in backend.users()? {
                writeln!(out, "{}", user.name)?;
            }
        }
    }
    Ok(())
}

fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line).context("reading the password from standard input")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        if password.is_empty() {
            bail!("empty password on standard input");
        }
        return Ok(password);
    }
    let first = prompt("Password: ")?;
    let second = prompt("Again: ")?;
    if first != second {
        bail!("the passwords differ");
    }
    if first.is_empty() {
        bail!("empty password");
    }
    Ok(first)
}

/// Read a line from the terminal with echo off.
fn prompt(text: &str) -> Result<String> {
    eprint!("{text}");
    std::io::stderr().flush().ok();
    let _guard = NoEcho::new();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    eprintln!();
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Turns terminal echo off until dropped.
struct NoEcho(Option<libc::termios>);

impl NoEcho {
    #[allow(unsafe_code)]
    fn new() -> NoEcho {
        let mut term = std::mem::MaybeUninit::<libc::termios>::zeroed();
        // SAFETY: fd 0 is our stdin; tcgetattr writes a termios into valid memory and we only
        // read it after it returns 0.
        if unsafe { libc::tcgetattr(0, term.as_mut_ptr()) } != 0 {
            return NoEcho(None);
        }
        // SAFETY: tcgetattr succeeded, so the struct is initialised.
        let saved = unsafe { term.assume_init() };
        let mut quiet = saved;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: a valid termios derived from the current one, applied to our own stdin.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) };
        NoEcho(Some(saved))
    }
}

impl Drop for NoEcho {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            // SAFETY: restores the settings read in `new` on the same fd.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, saved) };
        }
    }
}
