//! `espcam user add|list|passwd|remove|role`: dashboard users in the hub's auth database
//! (`<data dir>/auth.sqlite`, see `espcam-auth`). Also the pieces the other auth commands
//! share: the `--data-dir` / `--config` flags (resolved as `espcam serve` resolves them:
//! flag > `ESPCAM_*` environment > `espcam.toml` > default), reading a password, and
//! printing a time.
//!
//! These commands work **beside a running hub**: the auth database is SQLite in WAL mode
//! with normal locking (unlike the snapshot index, which the hub holds exclusively), so a
//! user added or removed here counts from the hub's next request, without a restart. No
//! behaviour of its own beyond wiring and printing; never prints a password.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use espcam_auth::{Actor, AuditAction, AuditRecord, Auth, AuthOptions, Password, Role, UserName};

/// Where the hub keeps its data: the same flags, variables and file as `espcam serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct DataDirArgs {
    /// Configuration file [default: ./espcam.toml when it exists]; only its `data_dir` is used.
    #[arg(long, value_name = "FILE", env = "ESPCAM_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The hub's data directory [default: ./espcam-data].
    #[arg(long, value_name = "DIR", env = "ESPCAM_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
}

impl DataDirArgs {
    /// The data directory, resolved exactly as `espcam serve` does.
    pub fn resolve(&self) -> anyhow::Result<PathBuf> {
        let overrides = espcam_hub::Overrides {
            data_dir: self.data_dir.clone(),
            ..espcam_hub::Overrides::default()
        };
        Ok(espcam_hub::Config::load(self.config.as_deref(), overrides)?.data_dir)
    }

    /// Opens the auth database; `create: false` for commands that only read or remove, so
    /// a mistyped `--data-dir` is an error instead of a new empty directory.
    pub fn open(&self, create: bool) -> anyhow::Result<Auth> {
        let dir = self.resolve()?;
        let options = AuthOptions {
            create,
            ..AuthOptions::default()
        };
        Ok(Auth::open_with(&dir, options)?)
    }
}

/// `espcam user …`
#[derive(Debug, clap::Args)]
pub struct UserArgs {
    #[command(subcommand)]
    cmd: UserCmd,
    #[command(flatten)]
    dir: DataDirArgs,
}

#[derive(Debug, clap::Subcommand)]
enum UserCmd {
    /// Add a user. The password is asked for (twice, not echoed) on a terminal, or read as
    /// one line from standard input otherwise.
    Add {
        /// 1-32 characters of A-Z a-z 0-9 _ - . (unique ignoring case).
        name: UserName,
        /// `admin` (everything) or `viewer` (live view, snapshots, recordings, events).
        #[arg(long)]
        role: Role,
    },
    /// List users.
    List,
    /// Change a user's password (and end their sessions).
    Passwd {
        /// The user.
        name: UserName,
    },
    /// Remove a user (and end their sessions). The last admin cannot be removed.
    Remove {
        /// The user.
        name: UserName,
    },
    /// Change a user's role. Counts from their next request; their open streams that the
    /// new role may not watch end. The last admin cannot be demoted.
    Role {
        /// The user.
        name: UserName,
        /// `admin` or `viewer`.
        #[arg(long)]
        role: Role,
    },
}

/// Runs `espcam user …`.
pub fn run(args: UserArgs) -> anyhow::Result<()> {
    match args.cmd {
        UserCmd::Add { name, role } => {
            let auth = args.dir.open(true)?;
            let password = read_password(&name)?;
            auth.add_user(&name, role, &password, now_us())?;
            audit(&auth, AuditAction::UserAdd, name.as_str(), role.as_str())?;
            println!("added user {name} ({role}) to {}", auth.path().display());
        }
        UserCmd::List => {
            let auth = args.dir.open(false)?;
            let users = auth.list_users()?;
            if users.is_empty() {
                println!("no users in {}", auth.path().display());
                return Ok(());
            }
            let w = users
                .iter()
                .map(|u| u.name.as_str().len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<w$}  {:<6}  {:<20}  LAST LOGIN",
                "NAME", "ROLE", "CREATED"
            );
            for u in users {
                println!(
                    "{:<w$}  {:<6}  {:<20}  {}",
                    u.name.as_str(),
                    u.role.as_str(),
                    fmt_time(u.created_us),
                    u.last_login_us.map_or_else(|| "never".into(), fmt_time)
                );
            }
        }
        UserCmd::Passwd { name } => {
            let auth = args.dir.open(false)?;
            let password = read_password(&name)?;
            auth.set_password(&name, &password, now_us())?;
            audit(&auth, AuditAction::UserPasswd, name.as_str(), "")?;
            println!("changed the password of {name}; their sessions were ended");
        }
        UserCmd::Remove { name } => {
            let auth = args.dir.open(false)?;
            auth.remove_user(&name)?;
            audit(&auth, AuditAction::UserRemove, name.as_str(), "")?;
            println!("removed user {name}");
        }
        UserCmd::Role { name, role } => {
            let auth = args.dir.open(false)?;
            auth.set_role(&name, role)?;
            audit(&auth, AuditAction::UserRole, name.as_str(), role.as_str())?;
            println!("{name} is now {role}");
        }
    }
    Ok(())
}

/// Records what the command line did, as `cli`.
pub fn audit(auth: &Auth, action: AuditAction, target: &str, detail: &str) -> anyhow::Result<()> {
    auth.audit(
        AuditRecord {
            actor: &Actor::Cli,
            action,
            target,
            detail,
            addr: None,
        },
        now_us(),
    )
    .context("the change was made but could not be written to the audit log")?;
    Ok(())
}

/// A new password for `name`: prompted twice without echo on a terminal, else the first
/// line of standard input (its line ending removed).
fn read_password(name: &UserName) -> anyhow::Result<Password> {
    let typed = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {name}: "))
            .context("could not read the password from the terminal")?;
        Password::new(&first)?;
        let again = rpassword::prompt_password("Repeat it: ")
            .context("could not read the password from the terminal")?;
        if first != again {
            anyhow::bail!("the two passwords differ: nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        let n = std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("could not read the password from standard input")?;
        if n == 0 {
            anyhow::bail!("no password on standard input: expected one line");
        }
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        trimmed.strip_suffix('\r').unwrap_or(trimmed).to_string()
    };
    Ok(Password::new(&typed)?)
}

/// Now, µs since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// `2025-01-01 12:00:00Z` (UTC).
pub fn fmt_time(us: u64) -> String {
    let secs = us / 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days (the store has its own copy for its directory names).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::fmt_time;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(fmt_time(0), "1970-01-01 00:00:00Z");
        assert_eq!(fmt_time(1_735_689_600_000_000), "2025-01-01 00:00:00Z");
        assert_eq!(
            fmt_time(1_709_208_000_000_000 + 1_500_000),
            "2024-02-29 12:00:01Z"
        );
    }
}
