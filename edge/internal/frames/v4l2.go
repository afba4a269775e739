//go:build linux && (arm64 || amd64)

package frames

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"image/jpeg"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// V4L2 ioctls and constants (linux/videodev2.h). The request numbers encode
// struct sizes for 64-bit ABIs (arm64 and amd64), which is what the agent
// ships for; on 32-bit ARM v4l2_buffer is smaller and these would differ.
const (
	vidiocQuerycap  = 0x80685600 // _IOR('V', 0, struct v4l2_capability), 104 bytes
	vidiocSFmt      = 0xc0d05605 // _IOWR('V', 5, struct v4l2_format), 208 bytes
	vidiocReqbufs   = 0xc0145608 // _IOWR('V', 8, struct v4l2_requestbuffers), 20 bytes
	vidiocQuerybuf  = 0xc0585609 // _IOWR('V', 9, struct v4l2_buffer), 88 bytes
	vidiocQbuf      = 0xc058560f // _IOWR('V', 15, struct v4l2_buffer)
	vidiocDqbuf     = 0xc0585611 // _IOWR('V', 17, struct v4l2_buffer)
	vidiocStreamon  = 0x40045612 // _IOW('V', 18, int)
	vidiocStreamoff = 0x40045613 // _IOW('V', 19, int)

	bufTypeVideoCapture = 1
	memoryMmap          = 1
	capVideoCapture     = 0x00000001
	capStreaming        = 0x04000000
	capDeviceCaps       = 0x80000000
	pixFmtMJPEG         = 'M' | 'J'<<8 | 'P'<<16 | 'G'<<24
	numBuffers          = 2
)

// v4l2Buffer is struct v4l2_buffer on 64-bit Linux.
type v4l2Buffer struct {
	Index     uint32
	Type      uint32
	Bytesused uint32
	Flags     uint32
	Field     uint32
	_         uint32
	Timestamp unix.Timeval
	Timecode  [16]byte
	Sequence  uint32
	Memory    uint32
	Offset    uint64 // union m: offset / userptr / planes / fd
	Length    uint32
	Reserved2 uint32
	RequestFD uint32
	_         uint32
}

// The layout must be the kernel's 88 bytes: either array length below is
// negative, and the build fails, if it is not.
var (
	_ [unsafe.Sizeof(v4l2Buffer{}) - 88]byte
	_ [88 - unsafe.Sizeof(v4l2Buffer{})]byte
)

// V4L2 captures MJPEG frames from a V4L2 camera (a USB UVC webcam, or any
// device offering V4L2_PIX_FMT_MJPEG) with memory-mapped streaming I/O.
type V4L2 struct {
	f       *os.File
	bufs    [][]byte
	n       int
	started bool
}

// OpenV4L2 opens dev (e.g. /dev/video0) and starts streaming MJPEG at
// width×height (the driver may pick the nearest size it supports).
func OpenV4L2(dev string, width, height int) (_ *V4L2, err error) {
	f, err := os.OpenFile(dev, os.O_RDWR|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	v := &V4L2{f: f}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	var cp [104]byte
	if err := v.ioctl(vidiocQuerycap, unsafe.Pointer(&cp[0])); err != nil {
		return nil, fmt.Errorf("%s: VIDIOC_QUERYCAP: %w", dev, err)
	}
	caps := binary.NativeEndian.Uint32(cp[84:])
	if caps&capDeviceCaps != 0 {
		caps = binary.NativeEndian.Uint32(cp[88:])
	}
	if caps&capVideoCapture == 0 || caps&capStreaming == 0 {
		return nil, fmt.Errorf("%s (%s): not a streaming video capture device", dev, cstr(cp[16:48]))
	}
	var fm [208]byte
	binary.NativeEndian.PutUint32(fm[0:], bufTypeVideoCapture)
	binary.NativeEndian.PutUint32(fm[8:], uint32(width))
	binary.NativeEndian.PutUint32(fm[12:], uint32(height))
	binary.NativeEndian.PutUint32(fm[16:], pixFmtMJPEG)
	if err := v.ioctl(vidiocSFmt, unsafe.Pointer(&fm[0])); err != nil {
		return nil, fmt.Errorf("%s: VIDIOC_S_FMT MJPEG %dx%d: %w", dev, width, height, err)
	}
	if got := binary.NativeEndian.Uint32(fm[16:]); got != pixFmtMJPEG {
		return nil, fmt.Errorf("%s: the driver does not offer MJPEG (offers fourcc %q)", dev, string(binary.LittleEndian.AppendUint32(nil, got)))
	}
	var rb [20]byte
	binary.NativeEndian.PutUint32(rb[0:], numBuffers)
	binary.NativeEndian.PutUint32(rb[4:], bufTypeVideoCapture)
	binary.NativeEndian.PutUint32(rb[8:], memoryMmap)
	if err := v.ioctl(vidiocReqbufs, unsafe.Pointer(&rb[0])); err != nil {
		return nil, fmt.Errorf("%s: VIDIOC_REQBUFS: %w", dev, err)
	}
	count := binary.NativeEndian.Uint32(rb[0:])
	if count == 0 {
		return nil, fmt.Errorf("%s: the driver granted no buffers", dev)
	}
	for i := range count {
		b := v4l2Buffer{Index: i, Type: bufTypeVideoCapture, Memory: memoryMmap}
		if err := v.ioctl(vidiocQuerybuf, unsafe.Pointer(&b)); err != nil {
			return nil, fmt.Errorf("%s: VIDIOC_QUERYBUF: %w", dev, err)
		}
		m, err := unix.Mmap(int(f.Fd()), int64(b.Offset), int(b.Length), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, fmt.Errorf("%s: mmap buffer %d: %w", dev, i, err)
		}
		v.bufs = append(v.bufs, m)
		if err := v.ioctl(vidiocQbuf, unsafe.Pointer(&b)); err != nil {
			return nil, fmt.Errorf("%s: VIDIOC_QBUF: %w", dev, err)
		}
	}
	typ := uint32(bufTypeVideoCapture)
	if err := v.ioctl(vidiocStreamon, unsafe.Pointer(&typ)); err != nil {
		return nil, fmt.Errorf("%s: VIDIOC_STREAMON: %w", dev, err)
	}
	v.started = true
	return v, nil
}

func (v *V4L2) ioctl(req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, v.f.Fd(), req, uintptr(arg))
		switch errno {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return errno
	}
}

// Next waits for a filled buffer, decodes its JPEG and requeues it.
func (v *V4L2) Next(ctx context.Context) (Frame, error) {
	for {
		if err := ctx.Err(); err != nil {
			return Frame{}, err
		}
		// Poll in short slices so cancellation is noticed.
		fds := []unix.PollFd{{Fd: int32(v.f.Fd()), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 200)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return Frame{}, fmt.Errorf("v4l2 poll: %w", err)
		}
		if n == 0 {
			continue
		}
		b := v4l2Buffer{Type: bufTypeVideoCapture, Memory: memoryMmap}
		if err := v.ioctl(vidiocDqbuf, unsafe.Pointer(&b)); err != nil {
			if errors.Is(err, unix.EAGAIN) {
				continue
			}
			return Frame{}, fmt.Errorf("VIDIOC_DQBUF: %w", err)
		}
		v.n++
		name := fmt.Sprintf("frame#%d", v.n)
		data := v.bufs[b.Index][:min(int(b.Bytesused), len(v.bufs[b.Index]))]
		img, derr := jpeg.Decode(bytes.NewReader(data))
		// Requeue before returning: the decoded image no longer needs the buffer.
		if err := v.ioctl(vidiocQbuf, unsafe.Pointer(&b)); err != nil {
			return Frame{}, fmt.Errorf("VIDIOC_QBUF: %w", err)
		}
		if derr != nil {
			return Frame{Name: name}, fmt.Errorf("decode %s: %w", name, derr)
		}
		return Frame{Image: img, Name: name}, nil
	}
}

// Close stops streaming and releases the buffers.
func (v *V4L2) Close() error {
	if v.started {
		typ := uint32(bufTypeVideoCapture)
		v.ioctl(vidiocStreamoff, unsafe.Pointer(&typ))
		v.started = false
	}
	for _, b := range v.bufs {
		unix.Munmap(b)
	}
	v.bufs = nil
	return v.f.Close()
}

func cstr(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}
