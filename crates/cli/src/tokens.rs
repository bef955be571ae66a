//! `espcam token add|list|revoke`: API tokens for tools that cannot log in (Home Assistant,
//! VLC, ffmpeg, scripts). Works beside a running hub, like `espcam user` (see `users.rs`).
//! `token add` prints the token once, alone on the last line of its output, so a script can
//! take it with `tail -n 1`; nothing else ever prints it.

use espcam_auth::{AuditAction, Role, TokenName};

use crate::users::{DataDirArgs, audit, fmt_time, now_us};

/// `espcam token …`
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    cmd: TokenCmd,
    #[command(flatten)]
    dir: DataDirArgs,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCmd {
    /// Create a token and print it (once: only its hash is kept).
    Add {
        /// 1-32 characters of A-Z a-z 0-9 _ - . (unique ignoring case), e.g. home-assistant.
        name: TokenName,
        /// `viewer` (live view, snapshots) or `admin` (everything).
        #[arg(long)]
        role: Role,
    },
    /// List tokens (never their values).
    List,
    /// Revoke a token: refused from the hub's next request on.
    Revoke {
        /// The token's name.
        name: TokenName,
    },
}

/// Runs `espcam token …`.
pub fn run(args: TokenArgs) -> anyhow::Result<()> {
    match args.cmd {
        TokenCmd::Add { name, role } => {
            let auth = args.dir.open(true)?;
            let token = auth.add_token(&name, role, now_us())?;
            audit(&auth, AuditAction::TokenAdd, name.as_str(), role.as_str())?;
            println!("added token {name} ({role}); copy it now, it cannot be shown again.");
            println!(
                "Send it as \"Authorization: Bearer <token>\", as ?token=<token> on stream.mjpg and snapshot.jpg, or as the password of HTTP Basic (any user name)."
            );
            println!("{}", token.secret.expose());
        }
        TokenCmd::List => {
            let auth = args.dir.open(false)?;
            let tokens = auth.list_tokens()?;
            if tokens.is_empty() {
                println!("no tokens in {}", auth.path().display());
                return Ok(());
            }
            let w = tokens
                .iter()
                .map(|t| t.name.as_str().len())
                .max()
                .unwrap_or(4)
                .max(4);
            println!(
                "{:<w$}  {:<6}  {:<20}  LAST USED",
                "NAME", "ROLE", "CREATED"
            );
            for t in tokens {
                println!(
                    "{:<w$}  {:<6}  {:<20}  {}",
                    t.name.as_str(),
                    t.role.as_str(),
                    fmt_time(t.created_us),
                    t.last_used_us.map_or_else(|| "never".into(), fmt_time)
                );
            }
        }
        TokenCmd::Revoke { name } => {
            let auth = args.dir.open(false)?;
            auth.revoke_token(&name)?;
            audit(&auth, AuditAction::TokenRevoke, name.as_str(), "")?;
            println!("revoked token {name}");
        }
    }
    Ok(())
}
