//! `dialgate-init`: PID 1 of the dialgate appliance image.
//!
//! Stage 1 (from the initramfs): mount the pseudo filesystems, load the
//! listed kernel modules, seed the kernel RNG from the hardware RNG, set
//! up dm-verity for the first root slot that verifies end to end, mount
//! it and the data partition, switch root and exec stage 2 from the
//! verified root. Stage 2: bring up the interfaces, start and supervise
//! the gateway, print the status line, feed the watchdog while the
//! gateway serves, and power off cleanly on the power key.
//!
//! Messages go to the console prefixed `dialgate-init:`; the line with
//! `READY` says the gateway serves and lists every listening socket.

#[cfg(target_os = "linux")]
fn main() {
    linux::main()
}

#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("dialgate-init runs only as PID 1 of the Linux image");
    std::process::exit(2);
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs::{self, File};
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use dialgate_board::allow::{self, AllowList};
    use dialgate_board::cmdline::{self, BootParams, Mode, Slot};
    use dialgate_board::copy;
    use dialgate_board::firewall;
    use dialgate_board::status::{self, Listening, Proto};
    use dialgate_board::supervise::{self, Backoff, Health};
    use dialgate_board::sys::{self, dm};
    use dialgate_board::update;
    use dialgate_board::uplink::DhcpChild;
    use dialgate_board::verity::{self, SlotOutcome};
    use dialgate_proto::config::Config;

    const NEWROOT: &str = "/newroot";
    const KIT: &str = "/data/kit";

    macro_rules! say {
        ($($t:tt)*) => {{
            let _ = writeln!(std::io::stdout(), "dialgate-init: {}", format_args!($($t)*));
        }};
    }

    fn uptime_ms() -> u64 {
        fs::read_to_string("/proc/uptime")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
            .map(|s| (s * 1000.0) as u64)
            .unwrap_or(0)
    }

    fn fail(msg: String) -> ! {
        say!("FATAL: {msg}");
        // PID 1 exiting panics the kernel; with panic=-1 the board resets
        // (qemu -no-reboot exits) instead of serving from an unverified root.
        std::process::exit(1)
    }

    pub fn main() {
        let args: Vec<String> = std::env::args().collect();
        if args.get(1).map(String::as_str) == Some("stage2") {
            stage2(args.get(2).cloned().unwrap_or_default())
        } else {
            stage1()
        }
    }

    fn params() -> BootParams {
        let c = fs::read_to_string("/proc/cmdline").unwrap_or_default();
        cmdline::parse(&c).unwrap_or_else(|e| fail(e.to_string()))
    }

    fn stage1() {
        let _ = fs::create_dir_all("/dev");
        let _ = sys::mount("devtmpfs", "/dev", "devtmpfs", libc::MS_NOSUID, "mode=0755");
        let _ = sys::console_stdio();
        for (fs_type, dir) in [("proc", "/proc"), ("sysfs", "/sys")] {
            let _ = fs::create_dir_all(dir);
            if let Err(e) = sys::mount(
                fs_type,
                dir,
                fs_type,
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                "",
            ) {
                fail(format!("mount {dir}: {e}"));
            }
        }
        say!("stage 1 at {} ms", uptime_ms());
        let p = params();
        load_modules("/etc/modules");
        seed_rng();
        let mut wanted: Vec<&str> = p.slots.iter().map(|s| s.device.as_str()).collect();
        wanted.push(&p.data);
        wait_for(&wanted, Duration::from_secs(5));

        let mut tried: Vec<(char, SlotOutcome)> = Vec::new();
        let slot = loop {
            let Some(slot) = verity::next_slot(&p.slots, &tried) else {
                fail("no root slot verified: not starting".into());
            };
            match try_slot(slot, &p.salt) {
                Ok(()) => {
                    say!("slot {}: verified, mounted", slot.name);
                    break slot.name;
                }
                Err(why) => {
                    say!("slot {}: REFUSED: {why}", slot.name);
                    tried.push((slot.name, SlotOutcome::Bad(why)));
                }
            }
        };
        let data = format!("{NEWROOT}/data");
        if let Err(e) = sys::mount(
            &p.data,
            &data,
            "ext4",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "",
        ) {
            fail(format!("data partition {}: {e}", p.data));
        }
        for d in ["/dev", "/proc", "/sys"] {
            if let Err(e) = sys::mount(d, &format!("{NEWROOT}{d}"), "", libc::MS_MOVE, "") {
                fail(format!("move {d}: {e}"));
            }
        }
        if let Err(e) = sys::switch_root(NEWROOT) {
            fail(format!("switch root: {e}"));
        }
        let e = Command::new("/sbin/init")
            .arg("stage2")
            .arg(slot.to_string())
            .exec();
        fail(format!("exec stage 2: {e}"));
    }

    /// Loads the modules listed in `list` (one name a line) with their
    /// dependencies, from `/lib/modules` of the current root.
    fn load_modules(list: &str) {
        let dir = "/lib/modules";
        let read = |f: &str| fs::read_to_string(format!("{dir}/{f}")).unwrap_or_default();
        let list = fs::read_to_string(list).unwrap_or_default();
        let wanted: Vec<&str> = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let order = dialgate_board::modules::load_order(
            &wanted,
            &read("modules.dep"),
            &read("modules.builtin"),
        )
        .unwrap_or_else(|e| fail(e.to_string()));
        for m in &order {
            if let Err(e) = sys::load_module(&format!("{dir}/{m}")) {
                say!("module {m}: {e}");
            }
        }
        say!("{} modules loaded at {} ms", order.len(), uptime_ms());
    }

    /// Credits 64 bytes from the hardware RNG to the kernel pool before
    /// anything (the gateway's TLS, key generation) draws from it.
    fn seed_rng() {
        let mut b = [0u8; 64];
        let ok = File::open("/dev/hwrng")
            .and_then(|mut f| f.read_exact(&mut b))
            .and_then(|()| sys::add_entropy(&b));
        match ok {
            Ok(()) => say!("kernel RNG seeded from /dev/hwrng"),
            Err(e) => say!("no hardware RNG seed: {e}"),
        }
    }

    fn wait_for(paths: &[&str], limit: Duration) {
        let start = Instant::now();
        while start.elapsed() < limit {
            if paths.iter().all(|p| fs::metadata(p).is_ok()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        say!("waiting for block devices timed out: {paths:?}");
    }

    /// dm-verity over the slot, a full read through it (every block checked
    /// against the trusted root hash: one flipped bit fails here), then the
    /// squashfs mount.
    fn try_slot(slot: &Slot, salt: &[u8]) -> Result<(), String> {
        let name = format!("root-{}", slot.name);
        // A firmware slot's root sits after its kernel and initramfs: a
        // linear window onto it is dm-verity's data device.
        let window = format!("{name}-data");
        let data = match verity::data_window(slot) {
            None => slot.device.clone(),
            Some((sectors, params)) => {
                let dev = dm::create(&window, "linear", sectors, &params)
                    .map_err(|e| format!("dm-linear: {e}"))?;
                let node = format!("/dev/{window}");
                sys::mknod_block(&node, dev).map_err(|e| format!("mknod: {e}"))?;
                node
            }
        };
        let (sectors, params) = verity::table(slot, &data, salt);
        let dev =
            dm::create(&name, "verity", sectors, &params).map_err(|e| format!("dm-verity: {e}"))?;
        let node = format!("/dev/{name}");
        let checked = sys::mknod_block(&node, dev)
            .map_err(|e| format!("mknod: {e}"))
            .and_then(|()| read_all(&node))
            .and_then(|()| {
                let _ = fs::create_dir_all(NEWROOT);
                sys::mount(
                    &node,
                    NEWROOT,
                    "squashfs",
                    libc::MS_RDONLY | libc::MS_NODEV,
                    "",
                )
                .map_err(|e| format!("mount: {e}"))
            });
        if checked.is_err() {
            let _ = fs::remove_file(&node);
            let _ = dm::remove(&name);
            if data != slot.device {
                let _ = fs::remove_file(&data);
                let _ = dm::remove(&window);
            }
        }
        checked
    }

    fn read_all(node: &str) -> Result<(), String> {
        let mut f = File::open(node).map_err(|e| format!("open: {e}"))?;
        let mut buf = vec![0u8; 1 << 20];
        let mut at = 0u64;
        loop {
            match f.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => at += n as u64,
                Err(e) => return Err(format!("verification failed near byte {at}: {e}")),
            }
        }
    }

    fn listening() -> Vec<Listening> {
        let mut l = Vec::new();
        for (proto, f) in [
            (Proto::Tcp, "tcp"),
            (Proto::Tcp, "tcp6"),
            (Proto::Udp, "udp"),
            (Proto::Udp, "udp6"),
        ] {
            if let Ok(t) = fs::read_to_string(format!("/proc/net/{f}")) {
                l.extend(status::parse_table(proto, &t));
            }
        }
        l
    }

    fn network(p: &BootParams) {
        let lo = sys::set_address("lo", std::net::Ipv4Addr::LOCALHOST, 8)
            .and_then(|()| sys::link_up("lo"));
        if let Err(e) = lo {
            say!("lo: {e}");
        }
        for n in p.net.iter().chain(p.uplink.iter()) {
            let r = sys::set_address(&n.interface, n.address, n.prefix)
                .and_then(|()| sys::link_up(&n.interface));
            match r {
                Ok(()) => say!("{}: {}/{}", n.interface, n.address, n.prefix),
                Err(e) => say!("{}: {e}", n.interface),
            }
            if let Some(gw) = n.gateway {
                if let Err(e) = sys::default_route(gw) {
                    say!("default route via {gw}: {e}");
                }
            }
        }
    }

    fn spawn(mode: Mode) -> Option<(libc::pid_t, Instant)> {
        // Only what this gateway says of its health counts for a trial.
        let _ = fs::remove_file(update::HEALTH);
        let mut c = Command::new("/bin/dialgate");
        match mode {
            Mode::Demo => c.args(["demo", "--dir", KIT]),
            Mode::Run => c.args(["run", "--config", &format!("{KIT}/dialgate.toml")]),
        };
        c.env_clear().env("HOME", "/data").current_dir("/data");
        match c.spawn() {
            Ok(child) => Some((child.id() as libc::pid_t, Instant::now())),
            Err(e) => {
                say!("starting the gateway: {e}");
                None
            }
        }
    }

    /// The default-deny firewall, following the kit configuration and
    /// the policy the gateway applied ([`AllowList`]), polled about once
    /// a second.
    struct Firewall {
        list: AllowList,
        last_poll: Instant,
    }

    impl Firewall {
        fn new(p: &BootParams, config: Config) -> Firewall {
            let phones = p.net.as_ref().map_or("eth0", |n| n.interface.as_str());
            // The uplink: its own interface when given, else the phone side's.
            let uplink = p.uplink_interface().unwrap_or(phones);
            let mut list = AllowList::new(config, phones, uplink);
            if p.uplink_dhcp.is_some() {
                list = list.with_dhcp_client();
            }
            if p.dhcpd.is_some() {
                list = list.with_dhcp_server();
            }
            Firewall {
                list,
                last_poll: Instant::now(),
            }
        }

        /// Loads the allow-list if it changed. The first call installs the
        /// ruleset: before any interface but loopback is up, and without
        /// it the appliance does not start serving.
        fn update(&mut self) {
            self.last_poll = Instant::now();
            let next = self.list.poll(copy::now_unix());
            if let Some(why) = &next.config_only {
                say!("firewall: the configuration's trunks only ({why})");
            }
            let Some(inputs) = next.load else { return };
            let rules = firewall::build(&inputs);
            let (batch, acked) = dialgate_board::nft::batch(&rules, 1);
            match sys::nft_apply(&batch, 1, acked) {
                Ok(()) => say!(
                    "firewall: default deny; in on {}: tcp/{} udp/{}-{}{}; uplink {}: {}; out: {} address(es){}{}, trunks of {}",
                    inputs.phones,
                    inputs.sip_port,
                    inputs.media.0,
                    inputs.media.1,
                    if inputs.dhcp_server { " udp/67 (DHCP server)" } else { "" },
                    inputs.uplink,
                    uplink_inbound(&inputs),
                    inputs.outbound.len(),
                    inputs
                        .outbound_ports
                        .iter()
                        .map(|p| format!(", tcp/{p} to any address (trunk by name)"))
                        .collect::<String>(),
                    inputs
                        .udp_outbound
                        .iter()
                        .map(|d| format!(", udp to {d}"))
                        .collect::<String>(),
                    next.policy.map_or("the configuration".to_string(), |v| format!("policy v{v}")),
                ),
                // At boot: no firewall, no service.
                Err(e) if !self.list.is_loaded() => fail(format!("firewall: {e}")),
                // Later: the previous ruleset stays (the kernel applies a
                // batch whole or not at all); tried again at the next poll.
                Err(e) => {
                    say!("firewall: the new allow-list was not loaded ({e}); the previous one stays");
                    return;
                }
            }
            self.list.loaded(inputs);
        }

        /// [`Firewall::update`] about once a second.
        fn tick(&mut self) {
            if self.last_poll.elapsed() >= Duration::from_secs(1) {
                self.update();
            }
        }
    }

    /// Writes the lease's DNS servers where the gateway's resolver reads
    /// them (`[dns] lease_file`), whole or not at all (a rename).
    fn hand_over_lease_dns(servers: &[std::net::Ipv4Addr]) {
        let text = dialgate_board::uplink::lease_dns_text(servers);
        let file = dialgate_board::uplink::LEASE_DNS_FILE;
        let part = format!("{file}.part");
        match fs::write(&part, &text).and_then(|()| fs::rename(&part, file)) {
            Ok(()) => say!(
                "uplink: the lease's DNS servers: {}",
                if servers.is_empty() {
                    "none".to_string()
                } else {
                    text.trim_end().replace('\n', " ")
                }
            ),
            Err(e) => say!("uplink: writing {file}: {e}"),
        }
    }

    /// What the uplink accepts inbound, for the console.
    fn uplink_inbound(i: &firewall::Inputs) -> String {
        let mut open: Vec<String> = Vec::new();
        if let Some(p) = i.bridge_listener {
            open.push(format!("tcp/{p} (bridge listener)"));
        }
        if i.dhcp_client {
            open.push("udp/68 from port 67 (DHCP replies)".into());
        }
        if open.is_empty() {
            "nothing new inbound".into()
        } else {
            open.join(", ")
        }
    }

    /// Loads `/etc/modules.late` (watchdog, buttons) and opens the
    /// watchdog (arming it) and every input device.
    fn late_devices() -> (Option<File>, Vec<(String, File)>) {
        load_modules("/etc/modules.late");
        let watchdog = File::options().write(true).open("/dev/watchdog").ok();
        say!(
            "watchdog: {}",
            if watchdog.is_some() { "armed" } else { "none" }
        );
        let mut keys = Vec::new();
        open_new_inputs(&mut keys);
        say!("power key and panic button: {} input device(s)", keys.len());
        (watchdog, keys)
    }

    /// Opens the input devices not open yet (a button driver may register
    /// its device after its module loaded: deferred probing); returns how
    /// many were added.
    fn open_new_inputs(keys: &mut Vec<(String, File)>) -> usize {
        let before = keys.len();
        for e in fs::read_dir("/dev/input").into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if !name.starts_with("event") || keys.iter().any(|(n, _)| *n == name) {
                continue;
            }
            use std::os::unix::fs::OpenOptionsExt;
            if let Ok(f) = File::options()
                .read(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(e.path())
            {
                keys.push((name, f));
            }
        }
        keys.len() - before
    }

    fn stage2(slot: String) {
        let p = params();
        let config = allow::load_config(std::path::Path::new(&format!("{KIT}/dialgate.toml")))
            .unwrap_or_else(|e| fail(format!("{KIT}/dialgate.toml: {e}")));
        let phone = config.phone.listen;
        let mut firewall = Firewall::new(&p, config);
        firewall.update();
        network(&p);
        // A small tmpfs for what PID 1 hands the gateway at run time (the
        // lease's DNS servers): gone at power-off, never on the flash.
        if let Err(e) = sys::mount(
            "tmpfs",
            "/tmp",
            "tmpfs",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "size=64k,mode=0755",
        ) {
            say!("/tmp: {e}");
        }
        let mut lease_dns: Vec<std::net::Ipv4Addr> = Vec::new();
        // The watchdog and the buttons come 3 s after the gateway first
        // serves: their modules (from the verified root) load then, so that
        // the start-up and the first phone's handshake have the CPU to
        // themselves (loading them takes over a second of a slow core).
        let mut watchdog: Option<File> = None;
        let mut keys: Vec<(String, File)> = Vec::new();
        let mut last_scan = Instant::now();
        let mut late_done = false;
        let mut ready_since: Option<Instant> = None;

        let mut backoff = Backoff::default();
        let mut gateway = spawn(p.mode);
        let mut restart_at: Option<Instant> = None;
        let mut ready_said = false;
        let mut ready_at: Option<Instant> = None;
        let mut last_feed = Instant::now() - Duration::from_secs(10);
        let mut restarts = 0u32;
        let mut agent = firmware_agent(&p, &slot);
        // The uplink by DHCP: its client runs beside the gateway.
        let mut dhcp = p
            .uplink_dhcp
            .as_deref()
            .map(|iface| DhcpChild::uplink("/bin/dialgate-dhcp", iface));
        // The phones' DHCP server (dialgate.dhcpd), on the phone side only
        // (the command line refuses it without an uplink of its own).
        let mut dhcpd = p
            .dhcpd
            .as_ref()
            .zip(p.net.as_ref())
            .map(|(c, n)| DhcpChild::phones("/bin/dialgate-dhcp", &n.interface, c));
        loop {
            while let Some((pid, status)) = sys::reap() {
                for d in dhcp.iter_mut().chain(dhcpd.iter_mut()) {
                    if d.is_pid(pid) {
                        d.exited(status);
                    }
                }
                if let Some((gpid, started)) = gateway {
                    if pid == gpid {
                        // HQ's signed commands, verified by the gateway.
                        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
                        match supervise::on_gateway_exit(code) {
                            supervise::GatewayExit::Wipe => {
                                say!("gateway: HQ's wipe command");
                                wipe(None, &p.data, watchdog.take())
                            }
                            supervise::GatewayExit::Reboot => {
                                say!("gateway: HQ's reboot command");
                                reboot(watchdog.take())
                            }
                            supervise::GatewayExit::Restart => {}
                        }
                        let delay = backoff.on_exit(started.elapsed());
                        say!(
                            "gateway exited (status {status}); restart in {} ms",
                            delay.as_millis()
                        );
                        gateway = None;
                        restarts += 1;
                        ready_said = false;
                        restart_at = Some(Instant::now() + delay);
                    }
                }
            }
            if gateway.is_none() && restart_at.is_some_and(|t| Instant::now() >= t) {
                restart_at = None;
                gateway = spawn(p.mode);
            }
            // A new policy applied by the gateway opens (and closes) its
            // trunks.
            firewall.tick();
            // An uplink change: the serving gateway checks the network and
            // polls home at once (before it serves, it does both anyway, and
            // its SIGUSR1 handler may not be installed yet).
            if let Some(d) = dhcpd.as_mut() {
                d.tick(Instant::now());
            }
            if dhcp.as_mut().is_some_and(|d| d.tick(Instant::now())) {
                // The lease's DNS servers: the firewall opens them first,
                // then the gateway's resolver is told where they are.
                let now = dhcp.as_ref().map(DhcpChild::dns).unwrap_or_default();
                if now != lease_dns {
                    lease_dns = now;
                    firewall.list.set_lease_dns(&lease_dns);
                    firewall.update();
                    hand_over_lease_dns(&lease_dns);
                }
                if let (Some((gpid, _)), true) = (gateway, ready_said) {
                    say!("uplink changed: SIGUSR1 to the gateway");
                    sys::kill(gpid, libc::SIGUSR1);
                }
            }
            let l = listening();
            let serving = l
                .iter()
                .any(|x| x.proto == Proto::Tcp && x.addr.port() == phone.port());
            if serving && !ready_said {
                ready_said = true;
                ready_at = Some(Instant::now());
                ready_since.get_or_insert_with(Instant::now);
                say!(
                    "READY slot={slot} version={} at {} ms; listening: {}",
                    p.version.map_or("unknown".to_string(), |v| v.to_string()),
                    uptime_ms(),
                    status::render(l)
                );
            }
            if !late_done && ready_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(3)) {
                late_done = true;
                (watchdog, keys) = late_devices();
                last_scan = Instant::now();
            }
            if late_done && last_scan.elapsed() >= Duration::from_secs(1) {
                last_scan = Instant::now();
                let added = open_new_inputs(&mut keys);
                if added > 0 {
                    say!("input device(s) added: {added}; now {}", keys.len());
                }
            }
            // The idle figures, once the start-up has settled.
            if let (Some(t), Some((pid, _))) = (ready_at, gateway) {
                if t.elapsed() >= Duration::from_secs(5) {
                    ready_at = None;
                    let read = |p: String| fs::read_to_string(p).unwrap_or_default();
                    let base = status::load_address(&read(format!("/proc/{pid}/maps")))
                        .map_or("?".to_string(), |a| format!("{a:#x}"));
                    say!(
                        "status: gateway mapped at {base}; {}; listening: {}",
                        status::memory_line(
                            &read("/proc/meminfo".into()),
                            &read(format!("/proc/{pid}/status"))
                        ),
                        status::render(listening())
                    );
                }
            }
            if let Some(a) = agent.as_mut() {
                let seen = update::Observed {
                    ready_since,
                    restarts,
                };
                let mut out = |l: String| say!("{l}");
                if let update::Action::Reboot(why) = a.tick(Instant::now(), seen, &mut out) {
                    say!("{why}");
                    stop_gateway(gateway.map(|g| g.0));
                    reboot(watchdog.take());
                }
            }
            let health = Health {
                running: gateway.is_some(),
                listening: serving,
                shutting_down: false,
            };
            if let Some(w) = watchdog.as_mut() {
                if supervise::feed_watchdog(health) && last_feed.elapsed() >= Duration::from_secs(1)
                {
                    let _ = w.write_all(b"\0");
                    last_feed = Instant::now();
                }
            }
            let mut buf = [0u8; supervise::INPUT_EVENT_SIZE * 16];
            let pressed = keys
                .iter_mut()
                .map(|(_, k)| k)
                .filter_map(|k| {
                    k.read(&mut buf)
                        .ok()
                        .and_then(|n| supervise::button(&buf[..n]))
                })
                .min_by_key(|b| *b != supervise::Button::Panic);
            match pressed {
                Some(supervise::Button::Panic) => {
                    wipe(gateway.map(|g| g.0), &p.data, watchdog.take())
                }
                Some(supervise::Button::Power) => shutdown(gateway.map(|g| g.0), watchdog.take()),
                None => {}
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The firmware agent, on a kit the bootloader booted from the A/B
    /// environment (`dialgate.updates=on`).
    fn firmware_agent(p: &BootParams, slot: &str) -> Option<update::Agent> {
        if !p.updates {
            return None;
        }
        let name = slot.chars().next().unwrap_or('?');
        let started = p
            .version
            .ok_or_else(|| "no dialgate.version on the command line".to_string())
            .and_then(|v| update::Agent::start(name, v, Instant::now()));
        match started {
            Ok((agent, said)) => {
                say!("firmware: {said}");
                Some(agent)
            }
            Err(e) => {
                say!("firmware: updates OFF on this boot: {e}");
                None
            }
        }
    }

    /// The panic button: the gateway is killed at once, the data partition
    /// (the kit's keys and configuration) overwritten and discarded; the
    /// appliance is unusable until re-provisioned. Then power off.
    fn wipe(gateway: Option<libc::pid_t>, data: &str, watchdog: Option<File>) -> ! {
        say!("panic button: wiping the data partition");
        if let Some(pid) = gateway {
            sys::kill(pid, libc::SIGKILL);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(1) && sys::reap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Err(e) = sys::umount("/data", libc::MNT_DETACH) {
            say!("data partition: {e}");
        }
        match sys::wipe_block_device(data) {
            Ok(n) => say!("panic button: data partition wiped ({n} bytes)"),
            Err(e) => say!("panic button: wiping {data}: {e}"),
        }
        sys::sync();
        if let Some(mut w) = watchdog {
            let _ = w.write_all(b"V");
        }
        say!("powering off");
        let e = sys::power_off();
        fail(format!("power off: {e}"))
    }

    /// Data synced and unmounted, the watchdog disarmed (the magic close),
    /// before a power-off or a restart.
    fn quiesce(watchdog: Option<File>) {
        sys::sync();
        match sys::umount("/data", 0) {
            Ok(()) => say!("data partition unmounted"),
            Err(e) => say!("data partition: {e}"),
        }
        if let Some(mut w) = watchdog {
            let _ = w.write_all(b"V");
        }
    }

    /// HQ's reboot command (the gateway has exited): data unmounted, restart.
    fn reboot(watchdog: Option<File>) -> ! {
        quiesce(watchdog);
        say!("rebooting");
        let e = sys::reboot();
        fail(format!("reboot: {e}"))
    }

    /// SIGTERM to the gateway, SIGKILL after 3 s.
    fn stop_gateway(gateway: Option<libc::pid_t>) {
        if let Some(pid) = gateway {
            sys::kill(pid, libc::SIGTERM);
            let start = Instant::now();
            let mut gone = false;
            while !gone && start.elapsed() < Duration::from_secs(3) {
                while let Some((p, _)) = sys::reap() {
                    gone |= p == pid;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !gone {
                sys::kill(pid, libc::SIGKILL);
            }
        }
    }

    fn shutdown(gateway: Option<libc::pid_t>, watchdog: Option<File>) -> ! {
        say!("power key: shutting down");
        stop_gateway(gateway);
        quiesce(watchdog);
        say!("powering off");
        let e = sys::power_off();
        fail(format!("power off: {e}"))
    }
}
