//! The files API through the real binary, escapes included.

mod common;

use common::Runnerd;
use http::{Method, StatusCode};
use paddock_runnerd::proto::FileKind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_read_stat_list_mkdir_remove() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;

    let written = client
        .write_file("dir/sub/hello.txt", &b"hello, world"[..], true)
        .await
        .expect("write with parents");
    assert_eq!(written.size, 12);
    assert_eq!(
        std::fs::read(runnerd.workspace().join("dir/sub/hello.txt")).expect("on disk"),
        b"hello, world"
    );
    let err = client
        .write_file("nodir/x.txt", &b"x"[..], false)
        .await
        .expect_err("no parents");
    assert_eq!(err.code(), Some("file_not_found"));

    assert_eq!(
        client
            .read_file("dir/sub/hello.txt", 0, None)
            .await
            .expect("read"),
        &b"hello, world"[..]
    );
    assert_eq!(
        client
            .read_file("dir/sub/hello.txt", 7, Some(3))
            .await
            .expect("range"),
        &b"wor"[..]
    );
    assert_eq!(
        client
            .read_file("dir/sub/hello.txt", 7, Some(100))
            .await
            .expect("range"),
        &b"world"[..]
    );
    assert!(
        client
            .read_file("dir/sub/hello.txt", 100, None)
            .await
            .expect("past end")
            .is_empty()
    );

    // Overwrite is atomic and leaves no temp file behind.
    client
        .write_file("dir/sub/hello.txt", &b"bye"[..], false)
        .await
        .expect("overwrite");
    let stat = client.stat("dir/sub/hello.txt").await.expect("stat");
    assert_eq!((stat.kind, stat.size), (FileKind::File, 3));
    assert!(stat.modified_ms.is_some());

    client.mkdir("dir/empty", false).await.expect("mkdir");
    let err = client.mkdir("dir/empty", false).await.expect_err("exists");
    assert_eq!(err.code(), Some("already_exists"));
    client.mkdir("a/b/c", true).await.expect("mkdir -p");

    let listing = client.list("dir").await.expect("list");
    let names: Vec<(&str, FileKind)> = listing
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.kind))
        .collect();
    assert_eq!(names, [("empty", FileKind::Dir), ("sub", FileKind::Dir)]);
    let sub = client.list("dir/sub").await.expect("list");
    assert_eq!(sub.entries.len(), 1, "no temp files left: {sub:?}");
    let root = client.list("").await.expect("list root");
    assert_eq!(root.entries.len(), 2);

    let err = client
        .read_file("dir", 0, None)
        .await
        .expect_err("a directory");
    assert_eq!(err.code(), Some("is_a_directory"));
    let err = client.remove("dir", false).await.expect_err("not empty");
    assert_eq!(err.code(), Some("directory_not_empty"));
    client
        .remove("dir/sub/hello.txt", false)
        .await
        .expect("rm file");
    client.remove("dir", true).await.expect("rm -r");
    let err = client.stat("dir").await.expect_err("gone");
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    let err = client.remove("", true).await.expect_err("root");
    assert_eq!(err.code(), Some("root_refused"));
    assert!(runnerd.workspace().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escapes_are_refused() {
    let runnerd = Runnerd::start();
    let client = &runnerd.client;
    let outside = runnerd.scratch().join("secret.txt");
    std::fs::write(&outside, "top secret").expect("outside file");
    std::os::unix::fs::symlink(&outside, runnerd.workspace().join("link")).expect("symlink");
    std::os::unix::fs::symlink(runnerd.scratch(), runnerd.workspace().join("dirlink"))
        .expect("dir symlink");
    std::os::unix::fs::symlink(
        "../../../../../../etc/passwd",
        runnerd.workspace().join("rel"),
    )
    .expect("relative symlink");

    let refused = |err: paddock_runnerd::client::ClientError| {
        let status = err.status().map(|s| s.as_u16());
        assert!(matches!(status, Some(400 | 403)), "{err}");
        assert!(!err.to_string().contains("top secret"));
        err
    };
    for path in [
        "../x",
        "a/../../x",
        "/etc/passwd",
        "link",
        "dirlink/secret.txt",
        "rel",
    ] {
        let err = refused(client.read_file(path, 0, None).await.expect_err(path));
        assert!(
            matches!(err.code(), Some("path_escape" | "absolute_path")),
            "{path}: {err}"
        );
        refused(client.stat(path).await.expect_err(path));
    }
    refused(client.list("dirlink").await.expect_err("list through link"));
    refused(client.list("..").await.expect_err("list parent"));
    refused(
        client
            .write_file("dirlink/new.txt", &b"x"[..], false)
            .await
            .expect_err("write through link"),
    );
    refused(
        client
            .write_file("../new.txt", &b"x"[..], true)
            .await
            .expect_err("write up"),
    );
    refused(
        client
            .mkdir("../newdir", false)
            .await
            .expect_err("mkdir up"),
    );
    refused(
        client
            .remove("dirlink/secret.txt", false)
            .await
            .expect_err("rm through link"),
    );
    assert!(!runnerd.scratch().join("new.txt").exists());
    assert!(outside.exists());

    // Encodings do not help: %2E%2E is "..", and a raw absolute path too.
    let (status, body) = client
        .raw(
            Method::GET,
            "/v1/files/%2E%2E/x?op=read",
            Default::default(),
        )
        .await
        .expect("raw");
    assert_eq!(status, StatusCode::FORBIDDEN, "{body:?}");
    let (status, _) = client
        .raw(
            Method::GET,
            "/v1/files//etc/passwd?op=read",
            Default::default(),
        )
        .await
        .expect("raw");
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Removing the link removes the link, not its target.
    client.remove("link", false).await.expect("rm link");
    assert!(outside.exists());
}
