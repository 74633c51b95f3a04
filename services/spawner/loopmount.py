"""Mounting a filesystem image through a loop device, unmounting it, and
finding what is mounted under a directory.

This talks to the kernel directly (the loop-control and loop ioctls,
mount(2), umount2(2)) rather than through mount(8): in a container, /dev
holds only the device nodes that existed when the container started, so a
loop device the kernel creates later has no node there and mount(8) fails;
this module makes the node when it is missing. It also spares starting two
processes per execution.

The loop device is configured with autoclear: it detaches itself once its
filesystem is unmounted (after the last user of a lazily unmounted one is
gone), so nothing here has to remember which device an image got.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import pathlib
import re
import stat
import struct

LOOP_CONTROL = "/dev/loop-control"
_LOOP_NODE = "/dev/loop{}"
_LOOP_SYSFS_DEV = "/sys/block/loop{}/dev"  # "major:minor"
_LOOP_NODE_MODE = 0o660
_MOUNTINFO = "/proc/self/mountinfo"
_MOUNTINFO_MOUNT_POINT = 4  # fifth field

# linux/loop.h
_LOOP_CTL_GET_FREE = 0x4C82
_LOOP_CONFIGURE = 0x4C0A  # Linux 5.8+: fd, flags and status in one call
LO_FLAGS_AUTOCLEAR = 4
LO_FLAGS_DIRECT_IO = 16
_LO_NAME_SIZE = 64
# struct loop_config: fd, block_size, struct loop_info64 (lo_device, lo_inode,
# lo_rdevice, lo_offset, lo_sizelimit, lo_number, lo_encrypt_type,
# lo_encrypt_key_size, lo_flags, lo_file_name, lo_crypt_name,
# lo_encrypt_key, lo_init[2]), __reserved[8].
_LOOP_CONFIG = struct.Struct("=II5Q4I64s64s32s2Q8Q")
# Another process may take the free device between our asking and our
# claiming it; the kernel then answers EBUSY and we ask again.
_CLAIM_ATTEMPTS = 16

# linux/mount.h
MS_NOSUID = 2
MS_NODEV = 4
MS_NOATIME = 1024
_MNT_DETACH = 2
_UMOUNT_NOFOLLOW = 8
# A mount point with more filesystems stacked on it than this is not one of ours.
_MAX_STACKED_MOUNTS = 8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def mount_image(image: str, target: str, fstype: str, flags: int, options: str) -> None:
    """Mounts the filesystem in the file `image` at `target`."""
    image_fd = os.open(image, os.O_RDWR | os.O_CLOEXEC)
    try:
        loop_fd, device = _attach(image_fd, image)
    finally:
        os.close(image_fd)
    try:
        # Closing loop_fd afterwards leaves the mount as the device's only
        # user; were the mount to fail, the close detaches the device.
        _check(_libc.mount(device.encode(), target.encode(), fstype.encode(), flags, options.encode()), target)
    finally:
        os.close(loop_fd)


def unmount(target: str) -> None:
    """Unmounts whatever is mounted at `target` (lazily when something still
    uses it); nothing mounted, or no such path, is fine."""
    for _ in range(_MAX_STACKED_MOUNTS):
        flags = _UMOUNT_NOFOLLOW
        if _libc.umount2(target.encode(), flags) != 0:
            error = ctypes.get_errno()
            if error in (errno.EINVAL, errno.ENOENT):
                return  # not a mount point (any more)
            if error != errno.EBUSY:
                raise OSError(error, os.strerror(error), target)
            _check(_libc.umount2(target.encode(), flags | _MNT_DETACH), target)
    raise OSError(errno.EBUSY, f"more than {_MAX_STACKED_MOUNTS} filesystems mounted here", target)


def mount_points_under(directory: str) -> list[pathlib.Path]:
    """The mount points directly inside `directory`, from this process's
    mount table."""
    parent = pathlib.Path(os.path.realpath(directory))
    found = []
    with open(_MOUNTINFO, encoding="utf-8", errors="surrogateescape") as table:
        for line in table:
            escaped = line.split(" ")[_MOUNTINFO_MOUNT_POINT]
            mount_point = pathlib.Path(_OCTAL_ESCAPE.sub(lambda m: chr(int(m[1], 8)), escaped))
            if mount_point.parent == parent and mount_point not in found:
                found.append(mount_point)
    return found


def _attach(image_fd: int, image: str) -> tuple[int, str]:
    """Binds a free loop device to the open image; returns the device's open
    descriptor and path."""
    control = os.open(LOOP_CONTROL, os.O_RDWR | os.O_CLOEXEC)
    try:
        for _ in range(_CLAIM_ATTEMPTS):
            number = fcntl.ioctl(control, _LOOP_CTL_GET_FREE)
            device = _device_node(number)
            loop_fd = os.open(device, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.ioctl(loop_fd, _LOOP_CONFIGURE, _config(image_fd, image))
            except OSError as exc:
                os.close(loop_fd)
                if exc.errno == errno.EBUSY:
                    continue
                raise
            return loop_fd, device
    finally:
        os.close(control)
    raise OSError(errno.EBUSY, "no free loop device", image)


def _config(image_fd: int, image: str) -> bytes:
    # Direct I/O keeps the image's pages out of the host's page cache (the
    # filesystem above already caches them); the kernel turns it off by
    # itself where the host's filesystem cannot do it.
    flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO
    name = os.fsencode(image)[-(_LO_NAME_SIZE - 1) :]
    return _LOOP_CONFIG.pack(image_fd, 0, 0, 0, 0, 0, 0, 0, 0, 0, flags, name, b"", b"", 0, 0, *([0] * 8))


def _device_node(number: int) -> str:
    """/dev/loopN, made when missing (a container's /dev is a snapshot)."""
    path = _LOOP_NODE.format(number)
    if not os.path.exists(path):
        with open(_LOOP_SYSFS_DEV.format(number), encoding="ascii") as dev:
            major, minor = (int(part) for part in dev.read().strip().split(":"))
        try:
            os.mknod(path, stat.S_IFBLK | _LOOP_NODE_MODE, os.makedev(major, minor))
        except FileExistsError:
            pass  # another execution made it first
    return path


def _check(result: int, path: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), path)
