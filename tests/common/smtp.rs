//! A small SMTP server for the mail tests: it speaks enough of RFC 5321
//! (220, EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no STARTTLS, no
//! AUTH) and keeps every message it is given, parsed.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as received.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as sent (headers and MIME parts, still encoded).
    pub raw: Vec<u8>,
}

impl Mail {
    pub fn header(&self, name: &str) -> String {
        use mailparse::MailHeaderMap as _;
        let parsed = mailparse::parse_mail(&self.raw).expect("a MIME message");
        parsed.headers.get_first_value(name).unwrap_or_default()
    }

    /// The decoded body of the first part of this MIME type.
    pub fn part(&self, mime: &str) -> Option<String> {
        let parsed = mailparse::parse_mail(&self.raw).expect("a MIME message");
        find_part(&parsed, mime)
    }

    /// The first `http(s)://` link of the text part that contains `needle`.
    pub fn link(&self, needle: &str) -> Option<String> {
        let text = self.part("text/plain")?;
        text.split_whitespace()
            .find(|w| w.starts_with("http") && w.contains(needle))
            .map(str::to_string)
    }

    /// The `token` parameter of [`Mail::link`].
    pub fn token(&self, needle: &str) -> Option<String> {
        let link = self.link(needle)?;
        let (_, query) = link.split_once('?')?;
        query
            .split('&')
            .find_map(|kv| kv.strip_prefix("token="))
            .map(str::to_string)
    }
}

fn find_part(mail: &mailparse::ParsedMail<'_>, mime: &str) -> Option<String> {
    if mail.subparts.is_empty() {
        return (mail.ctype.mimetype == mime).then(|| mail.get_body().unwrap());
    }
    mail.subparts.iter().find_map(|p| find_part(p, mime))
}

/// The server; it stops when dropped.
pub struct SmtpServer {
    pub addr: SocketAddr,
    inbox: Arc<Mutex<Vec<Mail>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpServer {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> SmtpServer {
        Self::start_on(0).await
    }

    /// Listens on `port` (one held with [`closed_port`] while the server
    /// was "down", released just before).
    pub async fn start_on(port: u16) -> SmtpServer {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inbox = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let inbox = inbox.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(session(stream, inbox.clone()));
                }
            }
        });
        SmtpServer { addr, inbox, task }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<Mail> {
        self.inbox.lock().unwrap().clone()
    }

    /// Waits until `count` messages have arrived (at most `limit`); the
    /// messages then, or a panic naming how many came.
    pub async fn wait_for(&self, count: usize, limit: Duration) -> Vec<Mail> {
        let arrived = super::eventually(limit, || async {
            self.inbox.lock().unwrap().len() >= count
        })
        .await;
        let mails = self.mails();
        assert!(arrived, "expected {count} mail(s), got {}", mails.len());
        mails
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A port nothing listens on, held until the socket is dropped: bound but
/// not listening, so connections to it are refused and no other test can
/// take it meanwhile.
pub fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

async fn session(stream: TcpStream, inbox: Arc<Mutex<Vec<Mail>>>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mut to = Vec::new();
    if write
        .write_all(b"220 test.invalid ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_ascii_uppercase();
        let reply: &[u8] = if command.starts_with("EHLO") {
            b"250-test.invalid\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
        } else if command.starts_with("HELO")
            || command.starts_with("MAIL FROM")
            || command.starts_with("NOOP")
        {
            b"250 ok\r\n"
        } else if command.starts_with("RSET") {
            to.clear();
            b"250 ok\r\n"
        } else if command.starts_with("RCPT TO") {
            let address = line.trim_end()[8..]
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>');
            to.push(address.to_string());
            b"250 ok\r\n"
        } else if command == "DATA" {
            if write.write_all(b"354 go ahead\r\n").await.is_err() {
                return;
            }
            let mut raw = Vec::new();
            loop {
                let mut data = String::new();
                match lines.read_line(&mut data).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if data == ".\r\n" || data == ".\n" {
                    break;
                }
                let unstuffed = data.strip_prefix('.').filter(|_| data.starts_with(".."));
                raw.extend_from_slice(unstuffed.unwrap_or(&data).as_bytes());
            }
            inbox.lock().unwrap().push(Mail {
                to: std::mem::take(&mut to),
                raw,
            });
            b"250 queued\r\n"
        } else if command.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"502 not implemented\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
