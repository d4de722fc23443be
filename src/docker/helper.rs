//! Helper containers: work on an engine's host done through that engine's API alone, with no
//! shell there. The helper image is built on the engine through the build API, `FROM scratch`,
//! from drillkit's own executable and the shared libraries it has loaded (`/proc/self/maps`), so
//! no registry is needed; its tag is the hash of those files, so an engine builds it once per
//! drillkit build. Helper containers carry [`LABEL`] and the fault id, and are removed after use;
//! `doctor` finds any that a killed injector left.
//!
//! The one helper today is `kill`: the container's main process gets SIGKILL from the host's pid
//! namespace (`pid: host`, only `CAP_KILL`, no network), as in a real crash — a kill through the
//! API would mark the container as stopped by hand and its restart policy would not fire.

use super::{Docker, Error};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The label every helper container and image carries (value: what it does).
pub const LABEL: &str = "drillkit.helper";
/// The label with the fault a helper container works for.
pub const FAULT_LABEL: &str = "drillkit.fault";
/// argv\[1\] that makes any drillkit executable run as a helper (see [`run`]).
pub const ARG: &str = "__drillkit-helper";
/// Where the executable sits in the helper image.
const EXE: &str = "/drillkit";

/// The image network helpers run when none is given (`--helper-image`): `ip`, `tc` and
/// `iptables` (iproute2 and iptables), published by the release workflow with each version.
/// `DRILLKIT_NETTOOLS_REPO` at build time names its repository (the release sets its owner's).
pub fn default_net_image() -> String {
    let repo = option_env!("DRILLKIT_NETTOOLS_REPO")
        .filter(|r| !r.is_empty())
        .unwrap_or("ghcr.io/drillkit/drillkit-nettools");
    format!("{repo}:v{}", env!("CARGO_PKG_VERSION"))
}

/// What a helper container said: its exit code and output.
#[derive(Debug, Default)]
pub struct Output {
    pub code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// One helper container: what it does (its label), the fault it works for, its image and
/// command, and the host config (namespaces, capabilities, volumes).
struct Spec<'a> {
    what: &'a str,
    fault: &'a str,
    image: String,
    cmd: Vec<String>,
    env: Vec<String>,
    user: Option<String>,
    host: bollard::models::HostConfig,
    /// Labels beside [`LABEL`] and [`FAULT_LABEL`] (a reaper's drill, deadline and fault).
    labels: Vec<(&'static str, String)>,
}

impl Spec<'_> {
    /// The container's name: what it does, its fault, and a random tail (a reaper is
    /// `drillkit-reaper-FAULT-…`, any other helper `drillkit-helper-WHAT-FAULT-…`).
    fn name(&self) -> String {
        let tail = rand::random::<u32>() & 0xff_ffff;
        if self.what == REAPER {
            format!("drillkit-reaper-{}-{tail:06x}", self.fault)
        } else {
            format!("drillkit-helper-{}-{}-{tail:06x}", self.what, self.fault)
        }
    }
}

/// Kill the main process (`pid`, as the engine reports it) of container `id` from the engine
/// host's pid namespace. The helper refuses when the pid no longer belongs to that container.
pub async fn kill_main_process(
    docker: &Docker,
    id: &str,
    pid: i64,
    fault: &str,
) -> Result<(), Error> {
    use bollard::models::HostConfig;
    let image = ensure_image(docker).await?;
    let spec = image.spec(
        "kill",
        fault,
        &["kill".into(), pid.to_string(), id.to_string()],
        HostConfig {
            pid_mode: Some("host".into()),
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["KILL".into()]),
            network_mode: Some("none".into()),
            ..Default::default()
        },
    );
    run(docker, &spec).await?.check(&spec).map(drop)
}

/// Whether `image` is on the engine; missing is exit 3 naming it and how to get it there
/// (drillkit never pulls: the engine may have no registry, and a pull is not a drill's business).
pub async fn require_image(docker: &Docker, image: &str) -> Result<(), Error> {
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(e) if super::is_not_found(&e) => Err(Error::HelperImage {
            image: image.to_string(),
            engine: docker.engine().describe(),
        }),
        Err(e) => Err(Error::api(format!("inspect helper image {image}"))(e)),
    }
}

/// Run `args` (`iptables …`, `tc …`, `ip …`) in the network namespace of container `id`: a
/// helper from `image` joins it (`network_mode: container:ID`, only `NET_ADMIN`), runs the one
/// command and is removed. A non-zero exit is the caller's to judge (it is in the output).
pub async fn in_netns(
    docker: &Docker,
    image: &str,
    id: &str,
    fault: &str,
    args: Vec<String>,
) -> Result<Output, Error> {
    let spec = Spec {
        what: "net",
        fault,
        image: image.to_string(),
        cmd: args,
        env: Vec::new(),
        user: None,
        host: net_host(id, "NET_ADMIN"),
        labels: Vec::new(),
    };
    run(docker, &spec).await
}

/// Host config of a helper in container `id`'s network namespace with one capability.
fn net_host(id: &str, cap: &str) -> bollard::models::HostConfig {
    bollard::models::HostConfig {
        network_mode: Some(format!("container:{id}")),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(vec![cap.into()]).filter(|_| !cap.is_empty()),
        ..Default::default()
    }
}

/// Start the delay proxy of `fault` in container `id`'s network namespace: a helper from
/// drillkit's own image running `proxy ARGS` as group `gid` (the REDIRECT rule lets that group's
/// connections pass), kept until [`remove_for`] removes it. Returns once it listens.
pub async fn start_proxy(
    docker: &Docker,
    id: &str,
    fault: &str,
    gid: u32,
    args: Vec<String>,
) -> Result<(), Error> {
    let image = ensure_image(docker).await?;
    let mut argv = vec!["proxy".to_string()];
    argv.extend(args);
    let mut host = net_host(id, "");
    host.cap_add = None;
    let mut spec = image.spec("proxy", fault, &argv, host);
    spec.user = Some(format!("0:{gid}"));
    let name = create(docker, &spec).await?;
    let ready = wait_ready(docker, &name).await;
    if ready.is_err() {
        let _ = remove(docker, &name).await;
    }
    ready
}

/// Wait until the proxy helper says `ready` (or stops, or 10 s pass).
async fn wait_ready(docker: &Docker, name: &str) -> Result<(), Error> {
    docker
        .start_container(name, None)
        .await
        .map_err(Error::api(format!("start helper container {name}")))?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let o = logs(docker, name).await;
        if o.stdout.starts_with("ready") {
            return Ok(());
        }
        let c = super::inspect(docker, name).await?;
        if !c.running || tokio::time::Instant::now() >= deadline {
            return Err(Error::Helper(format!(
                "the delay proxy helper {name} did not start ({}): {}",
                if c.running {
                    "no answer within 10s"
                } else {
                    "it exited"
                },
                o.stderr.trim()
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Write the fill file `file` (a path inside container `id`, on one of its volumes or bind
/// mounts) until `goal`: a helper from drillkit's own image with the container's volumes
/// (`volumes_from`) and no network. Returns the bytes taken.
pub async fn fill(
    docker: &Docker,
    id: &str,
    fault: &str,
    file: &str,
    goal: &str,
) -> Result<u64, Error> {
    let o = with_volumes(
        docker,
        id,
        fault,
        "fill",
        &["fill".into(), file.into(), goal.into()],
    )
    .await?;
    o.stdout
        .trim()
        .parse()
        .map_err(|_| Error::Helper(format!("the fill helper said {:?}", o.stdout.trim())))
}

/// Whether the engine host's kernel has netem, asked of a helper from drillkit's own image (no
/// network, no capabilities): `Err` says what it looked at.
pub async fn netem_available(docker: &Docker, fault: &str) -> Result<Result<(), String>, Error> {
    let image = ensure_image(docker).await?;
    let spec = image.spec(
        "netem",
        fault,
        &["netem".into()],
        bollard::models::HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            network_mode: Some("none".into()),
            ..Default::default()
        },
    );
    let o = run(docker, &spec).await?;
    Ok(if o.code == 0 {
        Ok(())
    } else {
        Err(format!(
            "on the engine {}: {}",
            docker.engine().describe(),
            o.stderr.trim().trim_start_matches("drillkit helper: ")
        ))
    })
}

/// Delete a fill file through a helper with container `id`'s volumes; gone already is fine.
pub async fn remove_file(
    docker: &Docker,
    id: &str,
    fault: &str,
    file: &str,
) -> Result<String, Error> {
    let o = with_volumes(docker, id, fault, "rm", &["rm".into(), file.into()]).await?;
    Ok(o.stdout.trim().to_string())
}

async fn with_volumes(
    docker: &Docker,
    id: &str,
    fault: &str,
    what: &str,
    argv: &[String],
) -> Result<Output, Error> {
    let image = ensure_image(docker).await?;
    let spec = image.spec(
        what,
        fault,
        argv,
        bollard::models::HostConfig {
            volumes_from: Some(vec![id.to_string()]),
            cap_drop: Some(vec!["ALL".into()]),
            network_mode: Some("none".into()),
            ..Default::default()
        },
    );
    run(docker, &spec).await?.check(&spec)
}

impl Output {
    fn check(self, spec: &Spec<'_>) -> Result<Output, Error> {
        if self.code == 0 {
            return Ok(self);
        }
        Err(Error::Helper(format!(
            "helper container ({} for {}) exited with {}: {}",
            spec.what,
            spec.fault,
            self.code,
            self.stderr.trim()
        )))
    }
}

/// Create a helper container (labelled, named after what it does and its fault).
async fn create(docker: &Docker, spec: &Spec<'_>) -> Result<String, Error> {
    use bollard::models::ContainerCreateBody;
    let name = spec.name();
    let mut labels = HashMap::from([
        (LABEL.to_string(), spec.what.to_string()),
        (FAULT_LABEL.to_string(), spec.fault.to_string()),
    ]);
    labels.extend(spec.labels.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        entrypoint: Some(spec.cmd.clone()),
        cmd: Some(Vec::new()),
        env: (!spec.env.is_empty()).then(|| spec.env.clone()),
        user: spec.user.clone(),
        labels: Some(labels),
        host_config: Some(spec.host.clone()),
        ..Default::default()
    };
    docker
        .create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(name.clone()),
                ..Default::default()
            }),
            body,
        )
        .await
        .map_err(Error::api(format!("create helper container {name}")))?;
    Ok(name)
}

/// Run one helper container to its end and remove it.
async fn run(docker: &Docker, spec: &Spec<'_>) -> Result<Output, Error> {
    let name = create(docker, spec).await?;
    let outcome = run_created(docker, &name).await;
    // Removed whatever happened (a killed injector's helper is `doctor`'s).
    let _ = remove(docker, &name).await;
    outcome
}

async fn run_created(docker: &Docker, name: &str) -> Result<Output, Error> {
    docker
        .start_container(name, None)
        .await
        .map_err(Error::api(format!("start helper container {name}")))?;
    let mut code = 0;
    let mut waits = docker.wait_container(name, None);
    while let Some(w) = waits.next().await {
        match w {
            Ok(r) => code = r.status_code,
            Err(bollard::errors::Error::DockerContainerWaitError { code: c, .. }) => code = c,
            Err(e) => return Err(Error::api(format!("wait for helper container {name}"))(e)),
        }
    }
    Ok(Output {
        code,
        ..logs(docker, name).await
    })
}

/// What a helper container printed so far.
async fn logs(docker: &Docker, name: &str) -> Output {
    use bollard::container::LogOutput;
    let mut out = Output::default();
    let mut logs = docker.logs(
        name,
        Some(bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    while let Some(Ok(l)) = logs.next().await {
        match l {
            LogOutput::StdErr { message } => {
                out.stderr.push_str(&String::from_utf8_lossy(&message))
            }
            other => out.stdout.push_str(&other.to_string()),
        }
    }
    out
}

/// Remove every helper container of `fault` that does `what` (a proxy when its fault is
/// reverted). Returns their names.
pub async fn remove_for(docker: &Docker, what: &str, fault: &str) -> Result<Vec<String>, Error> {
    let mut gone = Vec::new();
    for (name, f, w) in listed(docker).await? {
        if f == fault && w == what {
            remove(docker, &name).await?;
            gone.push(name);
        }
    }
    Ok(gone)
}

/// The helper image on an engine: its tag, the dynamic loader to start the executable with (none
/// for a static executable), and where its libraries are.
struct Image {
    tag: String,
    loader: Option<String>,
    lib_path: String,
}

impl Image {
    /// The command that runs drillkit's helper `argv` in this image: through the loader, or the
    /// executable itself when it is static.
    fn command(&self, argv: &[String]) -> Vec<String> {
        let mut cmd: Vec<String> = self.loader.iter().cloned().collect();
        cmd.extend([EXE.to_string(), ARG.to_string()]);
        cmd.extend(argv.iter().cloned());
        cmd
    }

    /// The environment of a helper from this image.
    fn env(&self) -> Vec<String> {
        if self.lib_path.is_empty() {
            Vec::new()
        } else {
            vec![format!("LD_LIBRARY_PATH={}", self.lib_path)]
        }
    }

    /// A helper from this image running drillkit's helper command `argv`.
    fn spec<'a>(
        &self,
        what: &'a str,
        fault: &'a str,
        argv: &[String],
        host: bollard::models::HostConfig,
    ) -> Spec<'a> {
        Spec {
            what,
            fault,
            image: self.tag.clone(),
            cmd: self.command(argv),
            env: self.env(),
            user: None,
            host,
            labels: Vec::new(),
        }
    }
}

/// The files of the helper image: drillkit's executable and the shared objects mapped into this
/// process (the loader among them).
fn files() -> Result<(PathBuf, Vec<PathBuf>), String> {
    let path =
        std::env::current_exe().map_err(|e| format!("cannot find my own executable: {e}"))?;
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| format!("cannot read /proc/self/maps: {e}"))?;
    let mut libs: Vec<PathBuf> = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter(|p| p.starts_with('/') && p.contains(".so"))
        .map(PathBuf::from)
        .filter(|p| *p != path)
        .collect();
    libs.sort();
    libs.dedup();
    // The running executable itself (the same inode the tag and the image are made from, even
    // when a new build replaced the file at `path` meanwhile).
    Ok((PathBuf::from("/proc/self/exe"), libs))
}

/// The GNU build id of an ELF file (`.note.gnu.build-id`, which the linker derives from the
/// file's contents), when it is a 64-bit little-endian ELF that has one: reading it costs a few
/// small reads, where hashing the file costs reading all of it (a release executable with debug
/// info is ~100 MiB, and every helper needs the image's tag).
fn build_id(path: &Path) -> Option<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).ok()?;
    let at = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, off).ok()?;
        Some(b)
    };
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let u64_at = |b: &[u8], i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let h = at(0, 64)?;
    // ELF, 64-bit, little-endian.
    if h[..4] != *b"\x7fELF" || h[4] != 2 || h[5] != 1 {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(&h, 0x20), u16_at(&h, 0x36), u16_at(&h, 0x38));
    if phentsize < 0x38 || phnum > 256 {
        return None;
    }
    let phdrs = at(phoff, usize::from(phentsize) * usize::from(phnum))?;
    for ph in phdrs.chunks(usize::from(phentsize)) {
        const PT_NOTE: u32 = 4;
        let size = u64_at(ph, 0x20);
        if u32_at(ph, 0) != PT_NOTE || size > 1 << 16 {
            continue;
        }
        let Some(notes) = at(u64_at(ph, 0x08), usize::try_from(size).ok()?) else {
            continue;
        };
        // Entries: namesz, descsz, type (u32 each), then name and desc, each padded to 4
        // (8-aligned note segments exist on some systems: their entries then misparse, which
        // only means no build id here). Sizes are checked before any index, in u64.
        let len = notes.len() as u64;
        let mut i: u64 = 0;
        while i + 12 <= len {
            let at32 = |o: u64| u32_at(&notes, o as usize);
            let (namesz, descsz, kind) = (
                u64::from(at32(i)),
                u64::from(at32(i + 4)),
                u64::from(at32(i + 8)),
            );
            let name = i + 12;
            let desc = name + namesz.div_ceil(4) * 4;
            let next = desc + descsz.div_ceil(4) * 4;
            if next > len {
                break;
            }
            const NT_GNU_BUILD_ID: u64 = 3;
            let (name, desc) = (name as usize, desc as usize);
            if kind == NT_GNU_BUILD_ID
                && notes[name..name + namesz as usize] == *b"GNU\0"
                && descsz > 0
            {
                return Some(notes[desc..desc + descsz as usize].to_vec());
            }
            i = next;
        }
    }
    None
}

/// The helper image's tag: from the build ids of the executable and its libraries when each
/// has one, else from their contents; either way a new build gets a new tag.
fn image_tag(exe: &Path, libs: &[PathBuf]) -> Result<String, String> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // Every field length-prefixed: no two different lists hash alike by shifting bytes.
    let mut field = |b: &[u8]| {
        ctx.update(&(b.len() as u64).to_le_bytes());
        ctx.update(b);
    };
    for (i, p) in std::iter::once(exe)
        .chain(libs.iter().map(PathBuf::as_path))
        .enumerate()
    {
        if i > 0 {
            field(p.display().to_string().as_bytes());
        }
        match build_id(p) {
            Some(id) => {
                field(b"build-id");
                field(&id);
            }
            None => {
                field(b"contents");
                field(&std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?);
            }
        }
    }
    Ok(format!(
        "drillkit-helper:{}",
        &hex::encode(ctx.finish().as_ref())[..16]
    ))
}

/// Build the helper image on the engine unless it is there.
async fn ensure_image(docker: &Docker) -> Result<Image, Error> {
    let helper = |e: String| Error::Helper(format!("cannot build the helper image: {e}"));
    let (exe, libs) = files().map_err(helper)?;
    let loader = libs
        .iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ld-linux") || n.starts_with("ld-musl"))
        })
        .map(|p| p.display().to_string());
    let mut lib_dirs: Vec<String> = libs
        .iter()
        .filter_map(|p| p.parent().map(|d| d.display().to_string()))
        .collect();
    lib_dirs.dedup();
    let tag = image_tag(&exe, &libs).map_err(helper)?;
    // A static executable has no loader: it is its own entrypoint.
    let image = Image {
        tag: tag.clone(),
        loader,
        lib_path: lib_dirs.join(":"),
    };
    if docker.inspect_image(&tag).await.is_ok() {
        return Ok(image);
    }
    let read = |p: &Path| std::fs::read(p).map_err(|e| helper(format!("{}: {e}", p.display())));
    let mut entries: Vec<(String, Vec<u8>, u32)> = vec![(format!("root{EXE}"), read(&exe)?, 0o755)];
    for l in &libs {
        entries.push((format!("root{}", l.display()), read(l)?, 0o755));
    }
    let dockerfile = format!("FROM scratch\nCOPY root/ /\nLABEL {LABEL}=image\n");
    entries.push(("Dockerfile".into(), dockerfile.into_bytes(), 0o644));
    let tar = tar(&entries);
    let mut build = docker.build_image(
        bollard::query_parameters::BuildImageOptions {
            t: Some(tag.clone()),
            rm: true,
            forcerm: true,
            ..Default::default()
        },
        None,
        Some(bollard::body_full(bytes::Bytes::from(tar))),
    );
    while let Some(step) = build.next().await {
        let step = step.map_err(Error::api(format!("build {tag}")))?;
        if let Some(e) = step.error_detail.and_then(|d| d.message) {
            return Err(helper(e));
        }
    }
    Ok(image)
}

/// A ustar archive of regular files (all the build context needs).
fn tar(entries: &[(String, Vec<u8>, u32)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data, mode) in entries {
        let mut h = [0u8; 512];
        let (prefix, base) = if name.len() > 100 {
            match name[..name.len().min(155)].rfind('/') {
                Some(i) => (&name[..i], &name[i + 1..]),
                None => ("", name.as_str()),
            }
        } else {
            ("", name.as_str())
        };
        let put = |h: &mut [u8; 512], at: usize, len: usize, v: &[u8]| {
            let n = v.len().min(len);
            h[at..at + n].copy_from_slice(&v[..n]);
        };
        put(&mut h, 0, 100, base.as_bytes());
        put(&mut h, 100, 8, format!("{mode:07o}\0").as_bytes());
        put(&mut h, 108, 8, b"0000000\0");
        put(&mut h, 116, 8, b"0000000\0");
        put(&mut h, 124, 12, format!("{:011o}\0", data.len()).as_bytes());
        put(&mut h, 136, 12, b"00000000000\0");
        h[156] = b'0';
        put(&mut h, 257, 8, b"ustar\x0000");
        put(&mut h, 345, 155, prefix.as_bytes());
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        put(&mut h, 148, 8, format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// Helper containers left on an engine (their injector was killed mid-work, or a proxy of a
/// fault still open): name and fault.
pub async fn leftovers(docker: &Docker) -> Result<Vec<(String, String)>, Error> {
    Ok(listed(docker)
        .await?
        .into_iter()
        .map(|(n, f, _)| (n, f))
        .collect())
}

/// Every helper container on an engine: name, fault, what it does.
async fn listed(docker: &Docker) -> Result<Vec<(String, String, String)>, Error> {
    let list = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![LABEL.to_string()],
            )])),
            ..Default::default()
        }))
        .await
        .map_err(Error::api("list helper containers"))?;
    Ok(list
        .into_iter()
        // An armed reaper is a safety net, not a leftover: `reapers` lists those.
        .filter(|c| !is_reaper(c))
        .map(|c| {
            let name = c
                .names
                .and_then(|n| n.into_iter().next())
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string();
            let labels = c.labels.unwrap_or_default();
            let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
            (name, get(FAULT_LABEL), get(LABEL))
        })
        .collect())
}

/// The [`LABEL`] value of reaper containers (the dead-man's switch on the engine's side).
pub const REAPER: &str = "reaper";
/// The label with a reaper's deadline (RFC 3339).
pub const DEADLINE_LABEL: &str = "drillkit.deadline";
/// The label with the drill a reaper serves.
pub const DRILL_LABEL: &str = "drillkit.drill";
/// The label saying what a reaper undoes (`stop web`).
pub const WHAT_LABEL: &str = "drillkit.what";
/// Where a reaper container finds its engine's socket (mounted from the engine's host).
pub const REAPER_SOCKET: &str = "/var/run/docker.sock";
/// Where a reaper container on a local engine finds the journal's folder (mounted), to record
/// what it did next to the journal.
pub const REAPER_RECORD_DIR: &str = "/drillkit-record";

fn is_reaper(c: &bollard::models::ContainerSummary) -> bool {
    c.labels
        .as_ref()
        .and_then(|l| l.get(LABEL))
        .is_some_and(|v| v == REAPER)
}

/// What a reaper container is started with.
pub struct ReaperSpec {
    pub fault: String,
    pub drill: String,
    /// `stop web`, for labels and `doctor`.
    pub what: String,
    /// The deadline as RFC 3339 (a label, for `doctor`).
    pub deadline: String,
    /// The engine host's socket, mounted at [`REAPER_SOCKET`].
    pub socket: PathBuf,
    /// A folder on the engine's host mounted at [`REAPER_RECORD_DIR`] (local engines: the
    /// journal's folder).
    pub record_dir: Option<PathBuf>,
    /// The helper's arguments after [`ARG`] (the reaper's orders).
    pub args: Vec<String>,
}

/// Start a reaper container: the helper image with the engine's socket mounted, labelled with
/// the fault and its deadline, removed by the engine when it exits (`AutoRemove`). Returns its
/// name. Not waited for: it outlives the injector.
pub async fn arm_reaper(docker: &Docker, spec: &ReaperSpec) -> Result<String, Error> {
    use bollard::models::HostConfig;
    let image = ensure_image(docker).await?;
    let mut binds = vec![format!("{}:{REAPER_SOCKET}", spec.socket.display())];
    if let Some(d) = &spec.record_dir {
        binds.push(format!("{}:{REAPER_RECORD_DIR}", d.display()));
    }
    let mut container = image.spec(
        REAPER,
        &spec.fault,
        &spec.args,
        HostConfig {
            binds: Some(binds),
            auto_remove: Some(true),
            cap_drop: Some(vec!["ALL".into()]),
            network_mode: Some("none".into()),
            ..Default::default()
        },
    );
    container.labels = vec![
        (DRILL_LABEL, spec.drill.clone()),
        (DEADLINE_LABEL, spec.deadline.clone()),
        (WHAT_LABEL, spec.what.clone()),
    ];
    let name = create(docker, &container).await?;
    if let Err(e) = docker.start_container(&name, None).await {
        let _ = remove(docker, &name).await;
        return Err(Error::api(format!(
            "start reaper container {name} (socket {} on the engine's host)",
            spec.socket.display()
        ))(e));
    }
    // Armed only once it says so: it reached its engine through the mounted socket (and it is
    // the engine it was started on). One that exits first fails the fault before it is applied.
    match armed_line(docker, &name).await {
        Ok(()) => Ok(name),
        Err(said) => {
            let _ = remove(docker, &name).await;
            Err(Error::Helper(format!(
                "reaper container {name} did not arm (socket {} on the engine's host): {said}",
                spec.socket.display()
            )))
        }
    }
}

/// What a reaper container prints once it is armed (the start of its first log line).
pub const ARMED_LINE: &str = "{\"armed\":";
/// How long a reaper container may take to say it is armed.
const ARM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Follow a reaper container's output until its armed line; Err with what it said otherwise.
async fn armed_line(docker: &Docker, name: &str) -> Result<(), String> {
    let mut logs = docker.logs(
        name,
        Some(bollard::query_parameters::LogsOptions {
            follow: true,
            stdout: true,
            stderr: true,
            ..Default::default()
        }),
    );
    let mut said = String::new();
    let read = async {
        while let Some(l) = logs.next().await {
            match l {
                Ok(l) => {
                    said.push_str(&l.to_string());
                    if said.lines().any(|x| x.starts_with(ARMED_LINE)) {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    };
    match tokio::time::timeout(ARM_TIMEOUT, read).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("it exited: {}", said.trim())),
        Err(_) => Err(format!(
            "not armed within {}s: {}",
            ARM_TIMEOUT.as_secs(),
            said.trim()
        )),
    }
}

/// An armed reaper container, as its labels say.
#[derive(Clone, Debug, PartialEq)]
pub struct ArmedReaper {
    pub name: String,
    pub fault: String,
    pub drill: String,
    pub what: String,
    pub deadline: String,
    /// The engine's state of it (`running`, …).
    pub state: String,
}

/// The reaper containers on an engine (of one fault, when given).
pub async fn reapers(docker: &Docker, fault: Option<&str>) -> Result<Vec<ArmedReaper>, Error> {
    let mut labels = vec![format!("{LABEL}={REAPER}")];
    if let Some(f) = fault {
        labels.push(format!("{FAULT_LABEL}={f}"));
    }
    let list = docker
        .list_containers(Some(bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_string(), labels)])),
            ..Default::default()
        }))
        .await
        .map_err(Error::api("list reaper containers"))?;
    let mut out: Vec<ArmedReaper> = list
        .into_iter()
        .map(|c| {
            let label = |k: &str| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(k).cloned())
                    .unwrap_or_default()
            };
            ArmedReaper {
                name: c
                    .names
                    .as_ref()
                    .and_then(|n| n.first().cloned())
                    .unwrap_or_default()
                    .trim_start_matches('/')
                    .to_string(),
                fault: label(FAULT_LABEL),
                drill: label(DRILL_LABEL),
                what: label(WHAT_LABEL),
                deadline: label(DEADLINE_LABEL),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
            }
        })
        .collect();
    out.sort_by(|a, b| a.deadline.cmp(&b.deadline));
    Ok(out)
}

/// Disarm a fault's reaper containers (a normal revert): remove them. Returns how many.
pub async fn disarm_reaper(docker: &Docker, fault: &str) -> Result<usize, Error> {
    let found = reapers(docker, Some(fault)).await?;
    for r in &found {
        remove(docker, &r.name).await?;
    }
    Ok(found.len())
}

/// Remove one helper container.
pub async fn remove(docker: &Docker, name: &str) -> Result<(), Error> {
    match docker
        .remove_container(
            name,
            Some(bollard::query_parameters::RemoveContainerOptions {
                force: true,
                ..Default::default()
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if super::is_not_found(&e) => Ok(()),
        Err(e) => Err(Error::api(format!("remove helper container {name}"))(e)),
    }
}

/// The helper's side, inside the helper container. `out` is its stdout (the CLI prints).
/// - `kill PID CONTAINER_ID`: SIGKILL to PID only when `/proc/PID/cgroup` names the container
///   (a pid the engine reported may have been reused since);
/// - `proxy --listen ADDR --to ADDR --delay D --jitter D [--fault F]`: the delay proxy, `ready`
///   once it listens;
/// - `fill FILE leave:BYTES|percent:FRACTION`: the fill file, then the bytes it took;
/// - `rm FILE`: delete it (gone already is fine).
///
/// The caller prints the error and exits non-zero.
pub fn run_helper(args: &[String], out: &dyn Fn(&str)) -> Result<(), String> {
    match args {
        [cmd, pid, container] if cmd == "kill" => {
            let pid: i32 = pid.parse().map_err(|_| format!("bad pid {pid}"))?;
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map_err(|e| {
                format!("pid {pid}: {e} (is the helper in the host pid namespace?)")
            })?;
            if !cgroup.contains(container.as_str()) {
                return Err(format!(
                    "pid {pid} no longer belongs to container {container}; not signalled"
                ));
            }
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            )
            .map_err(|e| format!("kill({pid}, SIGKILL): {e}"))
        }
        [cmd, rest @ ..] if cmd == "proxy" => {
            let flag = |name: &str| {
                rest.iter()
                    .position(|a| a == name)
                    .and_then(|i| rest.get(i + 1))
                    .cloned()
                    .unwrap_or_default()
            };
            let dur = |name: &str| -> Result<std::time::Duration, String> {
                let v = flag(name);
                if v.is_empty() {
                    return Ok(std::time::Duration::ZERO);
                }
                v.parse::<crate::units::Dur>()
                    .map(|d| d.0)
                    .map_err(|e| format!("{name} {v}: {e}"))
            };
            let (listen, to) = (flag("--listen"), flag("--to"));
            let (delay, jitter) = (dur("--delay")?, dur("--jitter")?);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("runtime: {e}"))?;
            rt.block_on(crate::faults::degrade::run_proxy(
                &listen,
                &to,
                delay,
                jitter,
                || out(&format!("ready {listen}")),
            ))
            .map_err(|e| e.to_string())
        }
        [cmd, file, goal] if cmd == "fill" => {
            let goal = parse_goal(goal)?;
            let n = crate::faults::fill::fill(Path::new(file), goal).map_err(|e| e.to_string())?;
            out(&n.to_string());
            Ok(())
        }
        [cmd] if cmd == "netem" => crate::faults::degrade::netem_available(),
        [cmd, file] if cmd == "rm" => {
            let how = crate::faults::fill::remove(file).map_err(|e| e.to_string())?;
            out(&how);
            Ok(())
        }
        _ => Err(format!("unknown helper command {args:?}")),
    }
}

/// A fill goal as the fill helper takes it.
pub fn goal_arg(goal: crate::faults::fill::Goal) -> String {
    match goal {
        crate::faults::fill::Goal::Leave(b) => format!("leave:{b}"),
        crate::faults::fill::Goal::Percent(p) => format!("percent:{p}"),
    }
}

fn parse_goal(s: &str) -> Result<crate::faults::fill::Goal, String> {
    let bad = || format!("bad fill goal {s:?}");
    match s.split_once(':') {
        Some(("leave", b)) => b
            .parse()
            .map(crate::faults::fill::Goal::Leave)
            .map_err(|_| bad()),
        Some(("percent", p)) => p
            .parse()
            .map(crate::faults::fill::Goal::Percent)
            .map_err(|_| bad()),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tar_headers_have_valid_checksums() {
        let t = super::tar(&[("root/x".into(), b"hello".to_vec(), 0o755)]);
        assert_eq!(t.len(), 512 + 512 + 1024);
        let h = &t[..512];
        let mut sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        sum -= h[148..156].iter().map(|b| u32::from(*b)).sum::<u32>();
        sum += 8 * u32::from(b' ');
        let recorded = u32::from_str_radix(std::str::from_utf8(&h[148..154]).expect("utf8"), 8)
            .expect("octal");
        assert_eq!(sum, recorded);
        assert_eq!(&t[512..517], b"hello");
    }

    /// A minimal ELF64 LE: header, one PT_NOTE program header, a notes segment with an ABI tag
    /// note first and the build id second.
    fn elf_with_build_id(id: &[u8]) -> Vec<u8> {
        let mut notes = Vec::new();
        let mut note = |kind: u32, desc: &[u8]| {
            notes.extend(4u32.to_le_bytes());
            notes.extend((desc.len() as u32).to_le_bytes());
            notes.extend(kind.to_le_bytes());
            notes.extend(b"GNU\0");
            notes.extend(desc);
            notes.resize(notes.len().div_ceil(4) * 4, 0);
        };
        note(1, &[0; 16]);
        note(3, id);
        let mut f = vec![0u8; 64 + 56];
        f[..6].copy_from_slice(b"\x7fELF\x02\x01");
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        f[64..68].copy_from_slice(&4u32.to_le_bytes());
        f[64 + 0x08..64 + 0x10].copy_from_slice(&120u64.to_le_bytes());
        f[64 + 0x20..64 + 0x28].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        f.extend(notes);
        f
    }

    #[test]
    fn the_image_tag_comes_from_build_ids_and_changes_with_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let exe = dir.path().join("drillkit");
        std::fs::write(&exe, elf_with_build_id(&[0xab; 20])).expect("write");
        assert_eq!(super::build_id(&exe), Some(vec![0xab; 20]));
        let first = super::image_tag(&exe, &[]).expect("tag");
        std::fs::write(&exe, elf_with_build_id(&[0xcd; 20])).expect("write");
        assert_ne!(super::image_tag(&exe, &[]).expect("tag"), first);
        // Without a build id (not ELF, or a truncated one), the contents decide.
        let lib = dir.path().join("lib.so");
        std::fs::write(&lib, b"not an elf").expect("write");
        assert_eq!(super::build_id(&lib), None);
        std::fs::write(&exe, &elf_with_build_id(&[0xcd; 20])[..100]).expect("write");
        assert_eq!(super::build_id(&exe), None);
        let a = super::image_tag(&exe, std::slice::from_ref(&lib)).expect("tag");
        std::fs::write(&lib, b"not an elf either").expect("write");
        assert_ne!(super::image_tag(&exe, &[lib]).expect("tag"), a);
        assert!(a.starts_with("drillkit-helper:"));
    }
}
