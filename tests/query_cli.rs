//! End to end: `techmon reference import` of a DUO file by URL into a running
//! `techmon serve`, and `techmon sql` reading it back, with the roles' tokens.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Output};
use std::time::Duration;

use common::{free_port, start};

/// Serves `body` to every request on a free port, as a download site would.
fn file_server(body: Vec<u8>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&body));
        }
    });
    port
}

fn techmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_techmon"))
        .args(args)
        .env_remove("TECHMON_TOKEN")
        .output()
        .expect("run techmon")
}

#[tokio::test]
async fn reference_import_by_url_and_sql_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let _service = start(dir.path(), port, "embedded", "techmon.events", &[]);
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..200 {
        if reqwest::get(format!("{url}/healthz")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let name = "01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv";
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("query/tests/data/duo")
            .join(name),
    )
    .expect("fixture");
    let site = file_server(fixture);
    let source = format!("http://127.0.0.1:{site}/{name}");
    let import = |token: &str| {
        techmon(&[
            "reference",
            "import",
            &source,
            "--url",
            &url,
            "--token",
            token,
        ])
    };

    let first = import("dev-token-admin");
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("imported")
            && stdout.contains("duo_vo_pupils")
            && stdout.contains("2024/25"),
        "{stdout}"
    );
    assert!(!stdout.contains("already"), "{stdout}");
    let again = import("dev-token-admin");
    assert!(String::from_utf8_lossy(&again.stdout).contains("already imported"));

    let researcher = techmon(&[
        "sql",
        "--url",
        &url,
        "--token",
        "dev-token-researcher",
        "SELECT count(DISTINCT brin6) AS schools, min(source) AS source FROM duo_vo_pupils",
    ]);
    let table = String::from_utf8_lossy(&researcher.stdout);
    assert!(
        researcher.status.success(),
        "{}",
        String::from_utf8_lossy(&researcher.stderr)
    );
    // The fixture has five schools; the URL is the recorded source.
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("5 ") && l.ends_with(source.as_str())),
        "{table}"
    );
    assert!(table.contains("(1 rows)"), "{table}");
    assert!(String::from_utf8_lossy(&researcher.stderr).contains("duo_vo_pupils=0"));

    let researcher_import = import("dev-token-researcher");
    assert!(!researcher_import.status.success());
    assert!(String::from_utf8_lossy(&researcher_import.stderr).contains("forbidden"));
    let hub = techmon(&[
        "sql",
        "--url",
        &url,
        "--token",
        "dev-token-tec-deventer",
        "SELECT 1",
    ]);
    assert!(!hub.status.success());
    assert!(String::from_utf8_lossy(&hub.stderr).contains("unauthorized"));
}
