// Binary frame codec; see FrameCodec.h.
#include "VrRecognitionCore/FrameCodec.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace VrRecognition::Core
{
	namespace
	{
		const uint8_t Magic[4] = {'V', 'R', 'F', 'R'};

		// Explicit little-endian access: correct on any host byte order.
		void PutU16(uint8_t* B, uint32_t V) { B[0] = static_cast<uint8_t>(V); B[1] = static_cast<uint8_t>(V >> 8); }
		void PutU32(uint8_t* B, uint32_t V)
		{
			for (int I = 0; I < 4; ++I) B[I] = static_cast<uint8_t>(V >> (8 * I));
		}
		void PutU64(uint8_t* B, uint64_t V)
		{
			for (int I = 0; I < 8; ++I) B[I] = static_cast<uint8_t>(V >> (8 * I));
		}
		void PutF32(uint8_t* B, float V)
		{
			uint32_t Bits = 0;
			std::memcpy(&Bits, &V, 4);
			PutU32(B, Bits);
		}
		uint32_t GetU16(const uint8_t* B) { return static_cast<uint32_t>(B[0]) | (static_cast<uint32_t>(B[1]) << 8); }
		uint32_t GetU32(const uint8_t* B)
		{
			return static_cast<uint32_t>(B[0]) | (static_cast<uint32_t>(B[1]) << 8) | (static_cast<uint32_t>(B[2]) << 16)
				| (static_cast<uint32_t>(B[3]) << 24);
		}
		uint64_t GetU64(const uint8_t* B) { return static_cast<uint64_t>(GetU32(B)) | (static_cast<uint64_t>(GetU32(B + 4)) << 32); }
		float GetF32(const uint8_t* B)
		{
			const uint32_t Bits = GetU32(B);
			float V = 0.f;
			std::memcpy(&V, &Bits, 4);
			return V;
		}

		bool InUnit(float V) { return V >= 0.f && V <= 1.f; } // false for NaN

		std::string Describe(const uint8_t* Data, size_t Count)
		{
			std::string Out;
			for (size_t I = 0; I < Count; ++I)
			{
				const uint8_t B = Data[I];
				if (B >= 0x20 && B < 0x7f)
				{
					Out += static_cast<char>(B);
				}
				else
				{
					char Buffer[8];
					std::snprintf(Buffer, sizeof(Buffer), "\\x%02x", static_cast<unsigned>(B));
					Out += Buffer;
				}
			}
			return Out;
		}
	} // namespace

	bool HeadPose::IsFinite() const
	{
		for (const float V : Position)
			if (!std::isfinite(V)) return false;
		for (const float V : Rotation)
			if (!std::isfinite(V)) return false;
		return true;
	}

	namespace FrameCodec
	{
		const char* WireName(EImageFormat Format)
		{
			switch (Format)
			{
			case EImageFormat::Jpeg: return "jpeg";
			case EImageFormat::Rgb8: return "rgb8";
			case EImageFormat::Rgba8: return "rgba8";
			default: return "unknown";
			}
		}

		int Channels(EImageFormat Format)
		{
			return Format == EImageFormat::Rgb8 ? 3 : Format == EImageFormat::Rgba8 ? 4 : 0;
		}

		std::string Check(const Frame& InFrame)
		{
			if (InFrame.CaptureTimeUs > MaxJsonSafeInt) return "capture_time_us must be below 2^53";
			if (InFrame.PayloadLength == 0 || InFrame.Payload == nullptr) return "frame needs a non-empty payload";
			if (InFrame.PayloadLength > 0xFFFFFFFFu) return "payload over 4 GiB";
			if (InFrame.Width < 1 || InFrame.Width > 65535 || InFrame.Height < 1 || InFrame.Height > 65535)
				return "width and height must be 1..65535";
			if (InFrame.Format != EImageFormat::Jpeg && InFrame.Format != EImageFormat::Rgb8 && InFrame.Format != EImageFormat::Rgba8)
				return "unknown image format";
			const int ChannelCount = Channels(InFrame.Format);
			if (ChannelCount != 0
				&& static_cast<uint64_t>(InFrame.Width) * static_cast<uint64_t>(InFrame.Height) * static_cast<uint64_t>(ChannelCount) != InFrame.PayloadLength)
				return "raw payload length must be width x height x channels";
			if (InFrame.Pose && !InFrame.Pose->IsFinite()) return "pose must be finite";
			if (InFrame.Gaze && (!InUnit(InFrame.Gaze->U) || !InUnit(InFrame.Gaze->V))) return "gaze must lie in [0, 1]";
			return std::string();
		}

		bool WriteHeader(const Frame& InFrame, uint8_t* Out, std::string* Why)
		{
			const std::string Problem = Check(InFrame);
			if (!Problem.empty())
			{
				if (Why != nullptr) *Why = Problem;
				return false;
			}
			uint32_t Flags = 0;
			const HeadPose Pose = InFrame.Pose ? *InFrame.Pose : HeadPose{{0.f, 0.f, 0.f}, {0.f, 0.f, 0.f, 0.f}};
			const GazePoint Gaze = InFrame.Gaze ? *InFrame.Gaze : GazePoint{};
			if (InFrame.Pose) Flags |= FrameFlags::HasPose;
			if (InFrame.Gaze) Flags |= FrameFlags::HasGaze;
			if (InFrame.RowsBottomUp) Flags |= FrameFlags::RowsBottomUp;
			std::memcpy(Out, Magic, 4);
			Out[4] = ProtocolVersion;
			Out[5] = MessageTypeFrame;
			PutU16(Out + 6, static_cast<uint32_t>(HeaderSize));
			PutU32(Out + 8, Flags);
			PutU32(Out + 12, InFrame.FrameId);
			PutU64(Out + 16, InFrame.CaptureTimeUs);
			for (int I = 0; I < 3; ++I) PutF32(Out + 24 + 4 * I, Pose.Position[I]);
			for (int I = 0; I < 4; ++I) PutF32(Out + 36 + 4 * I, Pose.Rotation[I]);
			PutF32(Out + 52, Gaze.U);
			PutF32(Out + 56, Gaze.V);
			Out[60] = static_cast<uint8_t>(InFrame.Format);
			Out[61] = 0;
			PutU16(Out + 62, static_cast<uint32_t>(InFrame.Width));
			PutU16(Out + 64, static_cast<uint32_t>(InFrame.Height));
			PutU16(Out + 66, 0);
			PutU32(Out + 68, static_cast<uint32_t>(InFrame.PayloadLength));
			return true;
		}

		bool Encode(const Frame& InFrame, std::vector<uint8_t>& Out, std::string* Why)
		{
			uint8_t Header[HeaderSize];
			if (!WriteHeader(InFrame, Header, Why)) return false;
			Out.resize(HeaderSize + InFrame.PayloadLength);
			std::memcpy(Out.data(), Header, HeaderSize);
			std::memcpy(Out.data() + HeaderSize, InFrame.Payload, InFrame.PayloadLength);
			return true;
		}

		bool Decode(const uint8_t* Data, size_t Size, Frame& Out, ProtocolError& Error)
		{
			using namespace ErrorCodes;
			if (Size < 4)
			{
				Error.Set(TruncatedHeader, "message is " + std::to_string(Size) + " bytes, shorter than the magic");
				return false;
			}
			if (std::memcmp(Data, Magic, 4) != 0)
			{
				Error.Set(BadMagic, "magic is " + Describe(Data, 4) + ", expected VRFR");
				return false;
			}
			if (Size < 8)
			{
				Error.Set(TruncatedHeader, "message is " + std::to_string(Size) + " bytes, header needs 72");
				return false;
			}
			const uint8_t Version = Data[4];
			const uint8_t MsgType = Data[5];
			const size_t HeaderLen = GetU16(Data + 6);
			if (Version != ProtocolVersion)
			{
				Error.Set(UnsupportedVersion, "frame version " + std::to_string(Version) + "; this peer speaks [1]");
				return false;
			}
			if (MsgType != MessageTypeFrame)
			{
				Error.Set(UnknownMessageType, "binary message type " + std::to_string(MsgType) + " is unknown");
				return false;
			}
			if (HeaderLen < HeaderSize)
			{
				Error.Set(BadHeader, "header_len " + std::to_string(HeaderLen) + " < 72");
				return false;
			}
			if (Size < HeaderLen)
			{
				Error.Set(TruncatedHeader, "message is " + std::to_string(Size) + " bytes, header_len says " + std::to_string(HeaderLen));
				return false;
			}
			const uint32_t Flags = GetU32(Data + 8);
			const uint32_t FrameId = GetU32(Data + 12);
			const uint64_t Capture = GetU64(Data + 16);
			HeadPose Pose;
			for (int I = 0; I < 3; ++I) Pose.Position[I] = GetF32(Data + 24 + 4 * I);
			for (int I = 0; I < 4; ++I) Pose.Rotation[I] = GetF32(Data + 36 + 4 * I);
			const GazePoint Gaze{GetF32(Data + 52), GetF32(Data + 56)};
			const uint8_t FormatCode = Data[60];
			const int Width = static_cast<int>(GetU16(Data + 62));
			const int Height = static_cast<int>(GetU16(Data + 64));
			const uint64_t PayloadLen = GetU32(Data + 68);
			const uint64_t Following = Size - HeaderLen;

			if (Capture > MaxJsonSafeInt)
			{
				Error.Set(BadHeader, "capture_time_us must be below 2^53 so JSON echoes it exactly", FrameId);
				return false;
			}
			if (PayloadLen != Following)
			{
				Error.Set(LengthMismatch, "payload_len " + std::to_string(PayloadLen) + " but " + std::to_string(Following) + " bytes follow the header", FrameId);
				return false;
			}
			if (PayloadLen == 0)
			{
				Error.Set(EmptyPayload, "frame has no image bytes", FrameId);
				return false;
			}
			const uint32_t Unknown = Flags & FrameFlags::MustUnderstandMask & ~FrameFlags::Known;
			if (Unknown != 0)
			{
				Error.Set(BadHeader, "unknown must-understand flag bits " + std::to_string(Unknown), FrameId);
				return false;
			}
			if (FormatCode < 1 || FormatCode > 3)
			{
				Error.Set(UnsupportedFormat, "image format " + std::to_string(FormatCode) + " is unknown", FrameId);
				return false;
			}
			const EImageFormat Format = static_cast<EImageFormat>(FormatCode);
			if (Width == 0 || Height == 0)
			{
				Error.Set(BadDimensions, "declared size " + std::to_string(Width) + "x" + std::to_string(Height) + " is empty", FrameId);
				return false;
			}
			const int ChannelCount = Channels(Format);
			const uint64_t RawSize = static_cast<uint64_t>(Width) * static_cast<uint64_t>(Height) * static_cast<uint64_t>(ChannelCount);
			if (ChannelCount != 0 && PayloadLen != RawSize)
			{
				Error.Set(BadDimensions, std::string(WireName(Format)) + " " + std::to_string(Width) + "x" + std::to_string(Height) + " needs "
					+ std::to_string(RawSize) + " bytes, got " + std::to_string(PayloadLen), FrameId);
				return false;
			}
			if ((Flags & FrameFlags::HasPose) != 0 && !Pose.IsFinite())
			{
				Error.Set(BadHeader, "pose has a non-finite value", FrameId);
				return false;
			}
			if ((Flags & FrameFlags::HasGaze) != 0 && (!InUnit(Gaze.U) || !InUnit(Gaze.V)))
			{
				Error.Set(BadHeader, "gaze is outside [0, 1]", FrameId);
				return false;
			}
			Out = Frame();
			Out.FrameId = FrameId;
			Out.CaptureTimeUs = Capture;
			Out.Format = Format;
			Out.Width = Width;
			Out.Height = Height;
			Out.RowsBottomUp = (Flags & FrameFlags::RowsBottomUp) != 0;
			if ((Flags & FrameFlags::HasPose) != 0) Out.Pose = Pose;
			if ((Flags & FrameFlags::HasGaze) != 0) Out.Gaze = Gaze;
			Out.Payload = Data + HeaderLen;
			Out.PayloadLength = static_cast<size_t>(PayloadLen);
			Out.HeaderLength = HeaderLen;
			return true;
		}
	} // namespace FrameCodec

	CropRect GazeCropRect(int Width, int Height, double U, double V, double Scale)
	{
		CropRect Rect;
		Rect.Side = (std::max)(1, static_cast<int>(std::floor(Scale * (std::min)(Width, Height) + 0.5)));
		const int Left = static_cast<int>(std::floor(U * Width - Rect.Side / 2.0 + 0.5));
		const int Top = static_cast<int>(std::floor(V * Height - Rect.Side / 2.0 + 0.5));
		Rect.Left = (std::min)((std::max)(Left, 0), Width - Rect.Side);
		Rect.Top = (std::min)((std::max)(Top, 0), Height - Rect.Side);
		return Rect;
	}
} // namespace VrRecognition::Core
