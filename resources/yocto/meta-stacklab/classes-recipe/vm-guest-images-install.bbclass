# Install other images, built for another MACHINE, into this image as nested VM guests.
#
#   VM_GUEST_IMAGES = "stacklab-guest-image"                 image recipes to install
#   VM_GUEST_IMAGE_stacklab-guest-image = "x86-guest.qcow2"  file name under /var/lib/virt/images/
#
# Each guest is built in a multiconfig (field notes §4: one build, two machines):
#   VM_GUEST_MC_<recipe>      multiconfig name        (default ${VM_GUEST_MC}, "x86")
#   VM_GUEST_MACHINE_<recipe> that multiconfig's MACHINE (default ${VM_GUEST_MACHINE}, "qemux86-64")
#   VM_GUEST_MEMORY_<recipe>  MiB for the nested guest (default: the guest's own QB_MEM)
#   VM_GUEST_SMP_<recipe>     vCPUs for the nested guest (default 1)
# The multiconfig must be enabled (BBMULTICONFIG) and must set TMPDIR .= "-${BB_CURRENT_MC}"
# like conf/multiconfig/x86.conf, which is how this class finds the guest's deploy dir.
#
# For each guest, /var/lib/virt/images/ gets:
#   <name>.qcow2 (or .ext4)  the guest's root filesystem, by its VM_GUEST_IMAGE_ name
#   <name>.kernel            the guest's kernel (bzImage for qemux86-64), or
#   <name>.vmlinux           its uncompressed ELF when deployed (PVH boot, see below)
#   <name>.json              a launch manifest: what stacklab-agent and the app's
#                            nested-stack code read to start the guest (docs/yocto.md).
# The manifest is written from the guest's own qemuboot.conf, so the QEMU machine, CPU,
# memory and kernel command line are the ones runqemu would use for it.

VM_GUEST_IMAGES ??= ""
VM_GUEST_MC ??= "x86"
VM_GUEST_MACHINE ??= "qemux86-64"
VM_GUEST_IMAGES_DIR ?= "${localstatedir}/lib/virt/images"

python () {
    guests = (d.getVar('VM_GUEST_IMAGES') or '').split()
    if not guests:
        return
    enabled = (d.getVar('BBMULTICONFIG') or '').split()
    for recipe in guests:
        mc = d.getVar('VM_GUEST_MC_%s' % recipe) or d.getVar('VM_GUEST_MC')
        if mc not in enabled:
            # Skipping (rather than failing) keeps "bitbake -p" clean in a workspace
            # generated for another image; asking for this image names the reason.
            raise bb.parse.SkipRecipe("nested guest %s needs multiconfig '%s': add BBMULTICONFIG = \"%s\" to local.conf" % (recipe, mc, mc))
        if not d.getVar('VM_GUEST_IMAGE_%s' % recipe):
            bb.fatal("VM_GUEST_IMAGES lists %s but VM_GUEST_IMAGE_%s (its file name) is not set" % (recipe, recipe))
        # The guest's image and kernel must be deployed before this rootfs is assembled.
        d.appendVarFlag('do_rootfs', 'mcdepends',
                        ' mc::%s:%s:do_image_complete mc::%s:virtual/kernel:do_deploy' % (mc, recipe, mc))
        d.appendVarFlag('stacklab_install_guests', 'vardeps',
                        ' VM_GUEST_IMAGE_%s VM_GUEST_MC_%s VM_GUEST_MACHINE_%s VM_GUEST_MEMORY_%s VM_GUEST_SMP_%s VM_GUEST_ARCH_%s' % ((recipe,) * 6))
}

ROOTFS_POSTPROCESS_COMMAND += "stacklab_install_guests "

python stacklab_install_guests () {
    import configparser, json, os, shutil

    def guest_qemuboot(path):
        """The guest's qemuboot.conf as a dict (runqemu's keys), or {} when absent."""
        if not os.path.exists(path):
            return {}
        cf = configparser.ConfigParser()
        cf.read(path)
        return dict(cf['config_bsp']) if cf.has_section('config_bsp') else {}

    def kernel_cmdline(qb, consoles):
        # runqemu's own: root=/dev/vda rw, console= from serial_consoles (the first one is
        # the one a nested guest's serial port is wired to), then QB_KERNEL_CMDLINE_APPEND.
        parts = ['root=%s' % (qb.get('qb_kernel_root') or '/dev/vda'), 'rw']
        if consoles:
            parts.append('console=%s,115200' % consoles[0])
        append = qb.get('qb_kernel_cmdline_append', '').strip()
        if append:
            parts.extend(append.split())
        # As the app's own nested boots (stack/stacks.ts NESTED_APPEND): a quiet log, since
        # every byte the nested kernel prints crosses two emulated UARTs.
        if 'quiet' not in parts:
            parts.append('quiet')
        return ' '.join(parts)

    rootfs = d.getVar('IMAGE_ROOTFS')
    destdir = rootfs + d.getVar('VM_GUEST_IMAGES_DIR')
    bb.utils.mkdirhier(destdir)
    base_tmpdir = d.getVar('TMPDIR')
    name_suffix = d.getVar('IMAGE_NAME_SUFFIX') or ''

    for index, recipe in enumerate((d.getVar('VM_GUEST_IMAGES') or '').split()):
        filename = d.getVar('VM_GUEST_IMAGE_%s' % recipe)
        mc = d.getVar('VM_GUEST_MC_%s' % recipe) or d.getVar('VM_GUEST_MC')
        machine = d.getVar('VM_GUEST_MACHINE_%s' % recipe) or d.getVar('VM_GUEST_MACHINE')
        name, ext = os.path.splitext(filename)
        if ext not in ('.qcow2', '.ext4') or not name or '/' in filename:
            bb.fatal("VM_GUEST_IMAGE_%s = '%s': use <name>.qcow2 or <name>.ext4" % (recipe, filename))
        fmt = ext[1:]

        deploy = os.path.join('%s-%s' % (base_tmpdir, mc), 'deploy', 'images', machine)
        link = '%s-%s%s' % (recipe, machine, name_suffix)
        source = os.path.join(deploy, '%s.%s' % (link, 'ext4.qcow2' if fmt == 'qcow2' else 'ext4'))
        if not os.path.exists(source):
            bb.fatal("nested guest %s: %s not found (is VM_GUEST_MACHINE_%s right, and does %s inherit vm-guest-image?)" % (recipe, source, recipe, recipe))

        qb = guest_qemuboot(os.path.join(deploy, link + '.qemuboot.conf'))
        kernel_type = qb.get('kernel_imagetype') or 'bzImage'
        kernel = None
        for candidate in (kernel_type, '%s-%s.bin' % (kernel_type, machine)):
            if os.path.exists(os.path.join(deploy, candidate)):
                kernel = os.path.join(deploy, candidate)
                break
        if not kernel:
            bb.fatal("nested guest %s: no %s kernel in %s" % (recipe, kernel_type, deploy))
        # An x86 guest with KERNEL_IMAGETYPES += "vmlinux" (conf/multiconfig/x86.conf) boots
        # its uncompressed ELF through the PVH entry: no firmware loader, no real-mode setup,
        # no decompressor, which saves most of a minute when its QEMU itself runs emulated.
        pvh = os.path.join(deploy, 'vmlinux-%s.bin' % machine)
        kernel_ext = 'kernel'
        if os.path.exists(pvh) and (qb.get('qb_system_name') or '').endswith('x86_64'):
            kernel, kernel_type, kernel_ext = pvh, 'vmlinux (PVH)', 'vmlinux'

        disk_path = os.path.join(destdir, filename)
        kernel_path = os.path.join(destdir, '%s.%s' % (name, kernel_ext))
        # Follow the deploy dir's symlinks: the rootfs gets the files themselves.
        shutil.copyfile(os.path.realpath(source), disk_path)
        shutil.copyfile(os.path.realpath(kernel), kernel_path)

        consoles = [c.split(';')[-1] for c in qb.get('serial_consoles', '').split() if c]
        if not consoles:
            consoles = ['ttyS0']
        memory = d.getVar('VM_GUEST_MEMORY_%s' % recipe) or qb.get('qb_mem', '').replace('-m', '').strip() or '256'
        try:
            memory = int(memory.rstrip('Mm'))
        except ValueError:
            bb.fatal("nested guest %s: memory '%s' is not a number of MiB" % (recipe, memory))

        # Machine and CPU as runqemu would pick them; one vCPU, since every vCPU of a
        # guest under TCG inside a TCG guest costs the whole stack.
        qemu_args = []
        for key in ('qb_machine', 'qb_cpu'):
            qemu_args.extend(qb.get(key, '').split())
        if not qemu_args:
            qemu_args = ['-machine', 'q35', '-cpu', 'max']
        smp = int(d.getVar('VM_GUEST_SMP_%s' % recipe) or '1')

        on_target = d.getVar('VM_GUEST_IMAGES_DIR')
        manifest = {
            'name': name,
            'recipe': recipe,
            'arch': d.getVar('VM_GUEST_ARCH_%s' % recipe) or (qb.get('qb_system_name', 'qemu-system-x86_64').replace('qemu-system-', '')),
            'machine': machine,
            'qemu': qb.get('qb_system_name') or 'qemu-system-x86_64',
            'kernel': os.path.join(on_target, '%s.%s' % (name, kernel_ext)),
            'disk': os.path.join(on_target, filename),
            'diskFormat': fmt,
            'memory': memory,
            'smp': smp,
            'append': kernel_cmdline(qb, consoles),
            'qemuArgs': qemu_args,
            'console': 'stacklab.nested%d' % index,
        }
        # stacklab-agent reads this with sed (busybox has no JSON parser): one key per line,
        # arrays on one line, and no string may hold a quote or a backslash.
        for key, value in manifest.items():
            for s in (value if isinstance(value, list) else [value]):
                if isinstance(s, str) and ('"' in s or "'" in s or '\\' in s):
                    bb.fatal("nested guest %s: manifest value for %s contains a quote or backslash: %s" % (recipe, key, s))
        lines = ['  %s: %s' % (json.dumps(k), json.dumps(v)) for k, v in manifest.items()]
        with open(os.path.join(destdir, name + '.json'), 'w') as f:
            f.write('{\n' + ',\n'.join(lines) + '\n}\n')
        bb.note("nested guest %s installed as %s (%s, kernel %s)" % (recipe, filename, machine, kernel_type))
}
stacklab_install_guests[vardeps] += "VM_GUEST_IMAGES VM_GUEST_MC VM_GUEST_MACHINE VM_GUEST_IMAGES_DIR"
