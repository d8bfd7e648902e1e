// Stub of IImageWrapper.h (UE 5.x).
#pragma once

#include "CoreMinimal.h"

enum class EImageFormat : int8
{
	Invalid = -1,
	PNG = 0,
	JPEG,
	GrayscaleJPEG,
	BMP,
	ICO,
	EXR,
	ICNS,
	TGA,
	HDR,
	TIFF,
	DDS,
	UEJPEG,
	GrayscaleUEJPEG,
};

enum class ERGBFormat : int8
{
	Invalid = -1,
	RGBA = 0,
	BGRA = 1,
	Gray = 2,
	RGBAF = 3,
	BGRE = 4,
	GrayF = 5,
};

class IImageWrapper
{
public:
	virtual ~IImageWrapper() {}
	virtual bool SetCompressed(const void* InCompressedData, int64 InCompressedSize) = 0;
	virtual bool SetRaw(const void* InRawData, int64 InRawSize, const int32 InWidth, const int32 InHeight, const ERGBFormat InFormat,
		const int32 InBitDepth, const int32 InBytesPerRow = 0) = 0;
	virtual TArray64<uint8> GetCompressed(int32 Quality = 0) = 0;
	virtual bool GetRaw(const ERGBFormat InFormat, int32 InBitDepth, TArray64<uint8>& OutRawData) = 0;
	virtual int64 GetWidth() const = 0;
	virtual int64 GetHeight() const = 0;
};
