"""Writes the hostile corpus in tests/data/hostile (run from tests/data)."""
import struct
import zlib


def chunk(t, d):
    return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)


def png(w, h, idat):
    ihdr = struct.pack('>IIBBBBB', w, h, 8, 0, 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr) + chunk(b'IDAT', idat) + chunk(b'IEND', b'')


def tiff(entries, next_ifd=0):
    def entry(e):
        if e[1] == 4:
            return struct.pack('<HHII', *e)
        return struct.pack('<HHIHH', e[0], e[1], e[2], e[3], 0)
    ifd = struct.pack('<H', len(entries)) + b''.join(entry(e) for e in entries) + struct.pack('<I', next_ifd)
    return b'II*\0' + struct.pack('<I', 8) + ifd


def pdf(objs, root=1):
    out = b'%PDF-1.4\n'
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += b'%d 0 obj\n' % i + o + b'\nendobj\n'
    x = len(out)
    out += b'xref\n0 %d\n0000000000 65535 f \n' % (len(objs) + 1)
    for o in offs:
        out += b'%010d 00000 n \n' % o
    out += b'trailer\n<< /Size %d /Root %d 0 R >>\nstartxref\n%d\n%%%%EOF\n' % (len(objs) + 1, root, x)
    return out


def stream(content, extra=b''):
    return b'<< ' + extra + b' /Length %d >>\nstream\n' % len(content) + content + b'\nendstream'


def one_page(media, content, resources=b'', more=()):
    return pdf([
        b'<< /Type /Catalog /Pages 2 0 R >>',
        b'<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
        b'<< /Type /Page /Parent 2 0 R /MediaBox ' + media + b' /Resources << ' + resources + b' >> /Contents 4 0 R >>',
        stream(content),
        *more,
    ])


def write(name, data):
    open('hostile/' + name, 'wb').write(data)


# Header claims 100000 x 100000 grey pixels; the data is a few bytes.
write('bomb.png', png(100000, 100000, zlib.compress(b'\0' * 1000)))
# A real bomb: 6000 x 6000 white pixels (36 MB) in 48 KB.
write('white6000.png', png(6000, 6000, zlib.compress((b'\0' + b'\xff' * 6000) * 6000, 9)))
write('truncated.png', png(6000, 6000, zlib.compress((b'\0' + b'\xff' * 6000) * 6000, 9))[:200])
# TIFF claiming 200000 x 200000 with a strip far past the end of the file.
write('bomb.tif', tiff([(256, 4, 1, 200000), (257, 4, 1, 200000), (258, 3, 1, 8), (259, 3, 1, 1),
                        (262, 3, 1, 1), (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, 200000),
                        (279, 4, 1, 4000000000)]))
# TIFF whose directory chain points back to itself.
write('loop.tif', tiff([(256, 3, 1, 8), (257, 3, 1, 8), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                        (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, 8), (279, 4, 1, 64)], next_ifd=8))
write('zero-pages.pdf', pdf([b'<< /Type /Catalog /Pages 2 0 R >>', b'<< /Type /Pages /Kids [] /Count 0 >>']))
write('image-bomb.pdf', one_page(
    b'[0 0 595 842]', b'q 500 0 0 700 50 50 cm /Im1 Do Q', b'/XObject << /Im1 5 0 R >>',
    [stream(zlib.compress(b'\0' * 100), b'/Type /XObject /Subtype /Image /Width 100000 /Height 100000 '
            b'/ColorSpace /DeviceGray /BitsPerComponent 8 /Filter /FlateDecode')]))
deep = b'[' * 20000 + b']' * 20000
write('deep-nesting.pdf', pdf([
    b'<< /Type /Catalog /Pages 2 0 R /Deep ' + deep + b' >>',
    b'<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    b'<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>',
    stream(deep + b' 0 0 m 100 100 l S'),
]))
deep_q = b'q ' * 10000 + b'0 0 m 100 100 l S ' + b'Q ' * 10000
write('deep-save.pdf', one_page(b'[0 0 595 842]', deep_q))
write('page-loop.pdf', pdf([b'<< /Type /Catalog /Pages 2 0 R >>', b'<< /Type /Pages /Kids [2 0 R 2 0 R] /Count 2 >>']))
write('bad-mediabox.pdf', one_page(b'[0 0 1e30 -5]', b'0 0 m 100 100 l S'))
write('huge-mediabox.pdf', one_page(b'[0 0 14400 14400]', b'0 0 m 14400 14400 l 200 w S'))
sample = open('sample.pdf', 'rb').read()
write('truncated.pdf', sample[:len(sample) // 2])
write('garbage.pdf', b'%PDF-1.7\n' + bytes((i * 7919) % 251 for i in range(3000)))
write('truncated.jpg', b'\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xdb\x00')
write('truncated.gif', b'GIF89a\x10\x00\x10\x00\x80\x00\x00')
write('binary.bin', bytes(range(256)))
