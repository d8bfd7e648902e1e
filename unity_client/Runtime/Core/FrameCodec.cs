// Binary frames of wire protocol v1 (docs/protocol.md section 2): the 72-byte little-endian header and
// its payload. Encode and decode mirror server/protocol.py, including the validation order (2.3), so the
// C# client reports the same error code as the server for the same bytes. Plain C#, no UnityEngine.
using System;
using System.Text;

namespace VrRecognition.Core
{
    public enum ImageFormat : byte { Jpeg = 1, Rgb8 = 2, Rgba8 = 3 }

    [Flags]
    public enum FrameFlags : uint
    {
        None = 0,
        HasPose = 1u << 0,
        HasGaze = 1u << 1,
        /// <summary>The payload's first row is the image's bottom row (a GPU readback on most APIs).</summary>
        RowsBottomUp = 1u << 2,
    }

    /// <summary>The closed list of v1 error codes (docs/protocol.md 5.1). Unknown codes from a newer
    /// server arrive as plain strings and must be treated as generic errors.</summary>
    public static class ErrorCodes
    {
        public const string TruncatedHeader = "truncated_header";
        public const string BadMagic = "bad_magic";
        public const string UnsupportedVersion = "unsupported_version";
        public const string UnknownMessageType = "unknown_message_type";
        public const string BadHeader = "bad_header";
        public const string LengthMismatch = "length_mismatch";
        public const string EmptyPayload = "empty_payload";
        public const string UnsupportedFormat = "unsupported_format";
        public const string BadDimensions = "bad_dimensions";
        public const string ImageTooLarge = "image_too_large";
        public const string CorruptImage = "corrupt_image";
        public const string MessageTooLarge = "message_too_large";
        public const string BadJson = "bad_json";
        public const string InvalidMessage = "invalid_message";
        public const string HelloRequired = "hello_required";
        public const string DuplicateHello = "duplicate_hello";
        public const string Unauthorized = "unauthorized";
        public const string ForbiddenOrigin = "forbidden_origin";
        public const string TooManyStreams = "too_many_streams";
        public const string SlowConsumer = "slow_consumer";
        public const string ModelUnavailable = "model_unavailable";
        public const string ShuttingDown = "shutting_down";
        public const string InternalError = "internal_error";
    }

    /// <summary>A message broke the protocol; Code is one of ErrorCodes. FrameId is set when the header
    /// got as far as the frame id (validation steps 7-13).</summary>
    public sealed class ProtocolException : Exception
    {
        public readonly string Code;
        public readonly long? FrameId;

        public ProtocolException(string code, string message, long? frameId = null) : base(code + ": " + message)
        {
            Code = code;
            FrameId = frameId;
        }
    }

    /// <summary>Head pose in the client's world frame (Unity: metres, left-handed, y up, z forward);
    /// rotation is a quaternion x, y, z, w. The server echoes it, it does not interpret it.</summary>
    public struct Pose
    {
        public float PositionX, PositionY, PositionZ;
        public float RotationX, RotationY, RotationZ, RotationW;

        public Pose(float px, float py, float pz, float qx, float qy, float qz, float qw)
        {
            PositionX = px; PositionY = py; PositionZ = pz;
            RotationX = qx; RotationY = qy; RotationZ = qz; RotationW = qw;
        }

        public bool IsFinite
        {
            get
            {
                return Finite(PositionX) && Finite(PositionY) && Finite(PositionZ) && Finite(RotationX)
                    && Finite(RotationY) && Finite(RotationZ) && Finite(RotationW);
            }
        }

        static bool Finite(float v) { return !float.IsNaN(v) && !float.IsInfinity(v); }
    }

    /// <summary>A gaze point, normalised to [0, 1] with the origin at the image's top-left.</summary>
    public struct Gaze
    {
        public float U, V;
        public Gaze(float u, float v) { U = u; V = v; }
    }

    /// <summary>One binary frame. On decode, Payload is the whole message and PayloadOffset/PayloadLength
    /// locate the image in it (no copy). On encode, the payload is Payload[PayloadOffset..+PayloadLength].</summary>
    public sealed class Frame
    {
        public uint FrameId;
        public ulong CaptureTimeUs;
        public ImageFormat Format = ImageFormat.Jpeg;
        public int Width, Height;
        public Pose? Pose;
        public Gaze? Gaze;
        public bool RowsBottomUp;
        public byte[] Payload;
        public int PayloadOffset;
        public int PayloadLength;
        /// <summary>Set by the decoder: header length read from the message (72 in v1, more from later revisions).</summary>
        public int HeaderLength = FrameCodec.HeaderSize;
    }

    public static class FrameCodec
    {
        public const int HeaderSize = 72;
        public const byte ProtocolVersion = 1;
        public const byte MessageTypeFrame = 1;
        public const ulong MaxJsonSafeInt = (1UL << 53) - 1;
        public const uint KnownFlags = (uint)(FrameFlags.HasPose | FrameFlags.HasGaze | FrameFlags.RowsBottomUp);
        public const uint MustUnderstandMask = 0xFFFF;
        static readonly byte[] Magic = { (byte)'V', (byte)'R', (byte)'F', (byte)'R' };

        public static string WireName(ImageFormat format)
        {
            switch (format)
            {
                case ImageFormat.Jpeg: return "jpeg";
                case ImageFormat.Rgb8: return "rgb8";
                case ImageFormat.Rgba8: return "rgba8";
                default: return "unknown";
            }
        }

        /// <summary>Bytes per pixel of a raw format, 0 for compressed ones.</summary>
        public static int Channels(ImageFormat format)
        {
            return format == ImageFormat.Rgb8 ? 3 : format == ImageFormat.Rgba8 ? 4 : 0;
        }

        /// <summary>Header plus payload as one new array, ready for one binary websocket message.</summary>
        public static byte[] Encode(Frame frame)
        {
            var message = new byte[HeaderSize + frame.PayloadLength];
            EncodeInto(frame, message, 0);
            return message;
        }

        /// <summary>Writes header plus payload into buffer at offset; returns the message length. Throws
        /// ArgumentException for a frame a decoder would reject (the encoder never emits bad frames).</summary>
        public static int EncodeInto(Frame frame, byte[] buffer, int offset)
        {
            Validate(frame);
            int total = HeaderSize + frame.PayloadLength;
            if (buffer.Length - offset < total) throw new ArgumentException("buffer too small for the frame");
            WriteHeader(frame, buffer, offset);
            Buffer.BlockCopy(frame.Payload, frame.PayloadOffset, buffer, offset + HeaderSize, frame.PayloadLength);
            return total;
        }

        /// <summary>Only the 72 header bytes (for senders that send header and payload as two fragments of one message).</summary>
        public static void WriteHeader(Frame frame, byte[] buffer, int offset)
        {
            Validate(frame);
            uint flags = 0;
            Pose pose = frame.Pose ?? default(Pose);
            Gaze gaze = frame.Gaze ?? default(Gaze);
            if (frame.Pose.HasValue) flags |= (uint)FrameFlags.HasPose;
            if (frame.Gaze.HasValue) flags |= (uint)FrameFlags.HasGaze;
            if (frame.RowsBottomUp) flags |= (uint)FrameFlags.RowsBottomUp;
            Buffer.BlockCopy(Magic, 0, buffer, offset, 4);
            buffer[offset + 4] = ProtocolVersion;
            buffer[offset + 5] = MessageTypeFrame;
            PutU16(buffer, offset + 6, HeaderSize);
            PutU32(buffer, offset + 8, flags);
            PutU32(buffer, offset + 12, frame.FrameId);
            PutU64(buffer, offset + 16, frame.CaptureTimeUs);
            PutF32(buffer, offset + 24, pose.PositionX);
            PutF32(buffer, offset + 28, pose.PositionY);
            PutF32(buffer, offset + 32, pose.PositionZ);
            PutF32(buffer, offset + 36, pose.RotationX);
            PutF32(buffer, offset + 40, pose.RotationY);
            PutF32(buffer, offset + 44, pose.RotationZ);
            PutF32(buffer, offset + 48, pose.RotationW);
            PutF32(buffer, offset + 52, gaze.U);
            PutF32(buffer, offset + 56, gaze.V);
            buffer[offset + 60] = (byte)frame.Format;
            buffer[offset + 61] = 0;
            PutU16(buffer, offset + 62, frame.Width);
            PutU16(buffer, offset + 64, frame.Height);
            PutU16(buffer, offset + 66, 0);
            PutU32(buffer, offset + 68, (uint)frame.PayloadLength);
        }

        static void Validate(Frame frame)
        {
            if (frame.CaptureTimeUs > MaxJsonSafeInt) throw new ArgumentException("capture_time_us must be below 2^53");
            if (frame.PayloadLength <= 0 || frame.Payload == null || frame.PayloadOffset < 0
                || frame.PayloadOffset + frame.PayloadLength > frame.Payload.Length)
                throw new ArgumentException("frame needs a non-empty payload inside its array");
            if (frame.Width < 1 || frame.Width > 65535 || frame.Height < 1 || frame.Height > 65535)
                throw new ArgumentException("width and height must be 1..65535");
            if (frame.Format != ImageFormat.Jpeg && frame.Format != ImageFormat.Rgb8 && frame.Format != ImageFormat.Rgba8)
                throw new ArgumentException("unknown image format");
            int channels = Channels(frame.Format);
            if (channels != 0 && (long)frame.Width * frame.Height * channels != frame.PayloadLength)
                throw new ArgumentException("raw payload length must be width x height x channels");
            if (frame.Pose.HasValue && !frame.Pose.Value.IsFinite) throw new ArgumentException("pose must be finite");
            if (frame.Gaze.HasValue && !InUnit(frame.Gaze.Value.U) || frame.Gaze.HasValue && !InUnit(frame.Gaze.Value.V))
                throw new ArgumentException("gaze must lie in [0, 1]");
        }

        static bool InUnit(float v) { return v >= 0f && v <= 1f; } // false for NaN

        /// <summary>Parses one binary message; throws ProtocolException with the first rule it breaks, in
        /// the order of docs/protocol.md 2.3. The returned frame's payload references data (no copy).</summary>
        public static Frame Decode(byte[] data, int offset, int count)
        {
            if (count < 4) throw new ProtocolException(ErrorCodes.TruncatedHeader, "message is " + count + " bytes, shorter than the magic");
            for (int i = 0; i < 4; i++)
                if (data[offset + i] != Magic[i])
                    throw new ProtocolException(ErrorCodes.BadMagic, "magic is " + Describe(data, offset, 4) + ", expected VRFR");
            if (count < 8) throw new ProtocolException(ErrorCodes.TruncatedHeader, "message is " + count + " bytes, header needs " + HeaderSize);
            byte version = data[offset + 4];
            byte msgType = data[offset + 5];
            int headerLen = GetU16(data, offset + 6);
            if (version != ProtocolVersion) throw new ProtocolException(ErrorCodes.UnsupportedVersion, "frame version " + version + "; this peer speaks [1]");
            if (msgType != MessageTypeFrame) throw new ProtocolException(ErrorCodes.UnknownMessageType, "binary message type " + msgType + " is unknown");
            if (headerLen < HeaderSize) throw new ProtocolException(ErrorCodes.BadHeader, "header_len " + headerLen + " < " + HeaderSize);
            if (count < headerLen) throw new ProtocolException(ErrorCodes.TruncatedHeader, "message is " + count + " bytes, header_len says " + headerLen);

            uint flags = GetU32(data, offset + 8);
            uint frameId = GetU32(data, offset + 12);
            ulong capture = GetU64(data, offset + 16);
            var pose = new Pose(GetF32(data, offset + 24), GetF32(data, offset + 28), GetF32(data, offset + 32),
                GetF32(data, offset + 36), GetF32(data, offset + 40), GetF32(data, offset + 44), GetF32(data, offset + 48));
            var gaze = new Gaze(GetF32(data, offset + 52), GetF32(data, offset + 56));
            byte format = data[offset + 60];
            int width = GetU16(data, offset + 62);
            int height = GetU16(data, offset + 64);
            uint payloadLen = GetU32(data, offset + 68);

            if (capture > MaxJsonSafeInt) throw new ProtocolException(ErrorCodes.BadHeader, "capture_time_us must be below 2^53", frameId);
            if (payloadLen != (uint)(count - headerLen))
                throw new ProtocolException(ErrorCodes.LengthMismatch, "payload_len " + payloadLen + " but " + (count - headerLen) + " bytes follow the header", frameId);
            if (payloadLen == 0) throw new ProtocolException(ErrorCodes.EmptyPayload, "frame has no image bytes", frameId);
            uint unknown = flags & MustUnderstandMask & ~KnownFlags;
            if (unknown != 0) throw new ProtocolException(ErrorCodes.BadHeader, "unknown must-understand flag bits 0x" + unknown.ToString("x4"), frameId);
            if (format < 1 || format > 3) throw new ProtocolException(ErrorCodes.UnsupportedFormat, "image format " + format + " is unknown", frameId);
            var imageFormat = (ImageFormat)format;
            if (width == 0 || height == 0) throw new ProtocolException(ErrorCodes.BadDimensions, "declared size " + width + "x" + height + " is empty", frameId);
            int channels = Channels(imageFormat);
            if (channels != 0 && payloadLen != (long)width * height * channels)
                throw new ProtocolException(ErrorCodes.BadDimensions, WireName(imageFormat) + " " + width + "x" + height + " needs " + ((long)width * height * channels) + " bytes, got " + payloadLen, frameId);
            var frame = new Frame
            {
                FrameId = frameId,
                CaptureTimeUs = capture,
                Format = imageFormat,
                Width = width,
                Height = height,
                RowsBottomUp = (flags & (uint)FrameFlags.RowsBottomUp) != 0,
                Payload = data,
                PayloadOffset = offset + headerLen,
                PayloadLength = (int)payloadLen,
                HeaderLength = headerLen,
            };
            if ((flags & (uint)FrameFlags.HasPose) != 0)
            {
                if (!pose.IsFinite) throw new ProtocolException(ErrorCodes.BadHeader, "pose has a non-finite value", frameId);
                frame.Pose = pose;
            }
            if ((flags & (uint)FrameFlags.HasGaze) != 0)
            {
                if (!InUnit(gaze.U) || !InUnit(gaze.V)) throw new ProtocolException(ErrorCodes.BadHeader, "gaze is outside [0, 1]", frameId);
                frame.Gaze = gaze;
            }
            return frame;
        }

        static string Describe(byte[] data, int offset, int count)
        {
            var sb = new StringBuilder();
            for (int i = 0; i < count; i++)
            {
                byte b = data[offset + i];
                if (b >= 0x20 && b < 0x7f) sb.Append((char)b); else sb.Append("\\x").Append(b.ToString("x2"));
            }
            return sb.ToString();
        }

        // Explicit little-endian access: correct on any host byte order (BitConverter is host order).
        static void PutU16(byte[] b, int o, int v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); }
        static void PutU32(byte[] b, int o, uint v) { b[o] = (byte)v; b[o + 1] = (byte)(v >> 8); b[o + 2] = (byte)(v >> 16); b[o + 3] = (byte)(v >> 24); }
        static void PutU64(byte[] b, int o, ulong v) { PutU32(b, o, (uint)v); PutU32(b, o + 4, (uint)(v >> 32)); }
        static void PutF32(byte[] b, int o, float v)
        {
            var raw = BitConverter.GetBytes(v);
            if (!BitConverter.IsLittleEndian) Array.Reverse(raw);
            Buffer.BlockCopy(raw, 0, b, o, 4);
        }
        static int GetU16(byte[] b, int o) { return b[o] | (b[o + 1] << 8); }
        static uint GetU32(byte[] b, int o) { return (uint)(b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)); }
        static ulong GetU64(byte[] b, int o) { return GetU32(b, o) | ((ulong)GetU32(b, o + 4) << 32); }
        static float GetF32(byte[] b, int o)
        {
            if (BitConverter.IsLittleEndian) return BitConverter.ToSingle(b, o);
            var raw = new byte[4];
            Buffer.BlockCopy(b, o, raw, 0, 4);
            Array.Reverse(raw);
            return BitConverter.ToSingle(raw, 0);
        }
    }
}
