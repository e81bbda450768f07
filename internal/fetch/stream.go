package fetch

import (
	"errors"
	"hash"
	"io"
	"os"
	"sync"
)

// streamSink extracts a tar or tar.gz while it downloads: the bytes go through a bounded queue to an
// extractor goroutine writing into a staging directory, so that the network and the disk work at the
// same time and nothing of the archive itself is kept.
type streamSink struct {
	o       Options
	staging string
	pipe    *chunkPipe
	done    chan error
	err     error
	ended   bool
}

func newStreamSink(o Options, format string) (*streamSink, error) {
	staging, err := newStaging(o)
	if err != nil {
		return nil, err
	}
	s := &streamSink{o: o, staging: staging, pipe: newChunkPipe(), done: make(chan error, 1)}
	go func() {
		err := unpackStream(o, s.pipe, format, staging)
		if err == nil {
			err = errExtractionEnded
		}
		s.pipe.closeRead(err)
		s.done <- err
	}()
	return s, nil
}

// errExtractionEnded is what a write gets after the extractor read its stream to the end: nothing
// should come after it.
var errExtractionEnded = errors.New("the archive ended before the download")

// Write hands p to the extractor; when the extractor has stopped (an entry was refused, the archive is
// corrupt) it returns the extractor's error. buffer and send do the same without a copy.
func (s *streamSink) Write(p []byte) (int, error) { return s.pipe.Write(p) }
func (s *streamSink) buffer() []byte              { return s.pipe.buffer() }
func (s *streamSink) send(b []byte) (int, error)  { return s.pipe.send(b) }

// wait ends the stream (nil: the download is complete) and returns the extractor's result.
func (s *streamSink) wait(cause error) error {
	if !s.ended {
		s.ended = true
		s.pipe.closeWrite(cause)
		s.err = <-s.done
		if errors.Is(s.err, errExtractionEnded) {
			s.err = nil
		}
	}
	return s.err
}

// finish waits for the extractor to take the end of the stream, then places the tree.
func (s *streamSink) finish() error {
	if err := s.wait(nil); err != nil {
		_ = os.RemoveAll(s.staging)
		return err
	}
	return place(s.o, s.staging)
}

// abort stops the extractor and removes what it wrote.
func (s *streamSink) abort() {
	_ = s.wait(errAborted)
	_ = os.RemoveAll(s.staging)
}

var errAborted = errors.New("the download was abandoned")

// chunkQueue is how many chunks of chunkSize the download may get ahead of the extractor.
const (
	chunkSize  = 256 << 10
	chunkQueue = 16
)

// chunkPipe is an io.Pipe with a queue: the writer copies into chunks and goes on while the reader is
// busy, up to chunkQueue chunks ahead.
type chunkPipe struct {
	ch   chan []byte
	free chan []byte
	cur  []byte
	last []byte

	werr error // set before ch is closed

	readDone chan struct{}
	once     sync.Once
	rerr     error // set before readDone is closed
}

func newChunkPipe() *chunkPipe {
	return &chunkPipe{
		ch: make(chan []byte, chunkQueue), free: make(chan []byte, chunkQueue+2), readDone: make(chan struct{}),
	}
}

func (p *chunkPipe) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		buf := p.buffer()
		n := copy(buf, b)
		if _, err := p.send(buf[:n]); err != nil {
			return written, err
		}
		written += n
		b = b[n:]
	}
	return written, nil
}

// buffer returns an empty chunk for send: a reader can fill it and hand it over without a copy.
func (p *chunkPipe) buffer() []byte {
	select {
	case buf := <-p.free:
		return buf
	default:
		return make([]byte, chunkSize)
	}
}

// send hands buf (from buffer) to the reader, which owns it from then on.
func (p *chunkPipe) send(buf []byte) (int, error) {
	select {
	case p.ch <- buf:
		return len(buf), nil
	case <-p.readDone:
		return 0, p.rerr
	}
}

// closeWrite ends the stream: the reader gets io.EOF when err is nil, else err.
func (p *chunkPipe) closeWrite(err error) {
	p.werr = err
	close(p.ch)
}

// Read fills b from the chunks at hand, waiting only when it has nothing: the extractor then writes
// files in large pieces whatever sizes the network's reads had.
func (p *chunkPipe) Read(b []byte) (int, error) {
	n := 0
	for n < len(b) {
		if len(p.cur) == 0 {
			p.recycle()
			var buf []byte
			var ok bool
			if n == 0 {
				buf, ok = <-p.ch
			} else {
				select {
				case buf, ok = <-p.ch:
				default:
					return n, nil
				}
			}
			if !ok {
				if n > 0 {
					return n, nil
				}
				if p.werr != nil {
					return 0, p.werr
				}
				return 0, io.EOF
			}
			p.cur, p.last = buf, buf
		}
		c := copy(b[n:], p.cur)
		p.cur = p.cur[c:]
		n += c
	}
	return n, nil
}

// recycle gives the chunk just read back to the writer.
func (p *chunkPipe) recycle() {
	if p.last != nil {
		select {
		case p.free <- p.last[:cap(p.last)]:
		default:
		}
		p.last = nil
	}
}

// closeRead stops the writer, whose writes then return err.
func (p *chunkPipe) closeRead(err error) {
	p.once.Do(func() {
		p.rerr = err
		close(p.readDone)
	})
}

// hashingSender hashes chunks on a goroutine of its own and passes them on to the extractor, so that a
// costly digest (MD5: about 1.5 CPU-seconds per GiB) overlaps the network's reads instead of adding to
// them. Chunks go through it in order; the extractor owns each one once it is passed on.
type hashingSender struct {
	ch   chan []byte
	done chan struct{}
	err  error // set before done is closed
}

func startHashing(h hash.Hash, s *streamSink) *hashingSender {
	hs := &hashingSender{ch: make(chan []byte, 4), done: make(chan struct{})}
	go func() {
		defer close(hs.done)
		for b := range hs.ch {
			_, _ = h.Write(b)
			if _, err := s.send(b); err != nil {
				hs.err = err
				return
			}
		}
	}()
	return hs
}

// send queues b; it returns the extractor's error once it has stopped.
func (hs *hashingSender) send(b []byte) error {
	select {
	case hs.ch <- b:
		return nil
	case <-hs.done:
		return hs.err
	}
}

// close waits until every chunk sent is hashed and passed on.
func (hs *hashingSender) close() error {
	close(hs.ch)
	<-hs.done
	return hs.err
}
