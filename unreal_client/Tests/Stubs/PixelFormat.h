// Stub of PixelFormat.h (the values the plugin compares with).
#pragma once

enum EPixelFormat : unsigned char
{
	PF_Unknown = 0,
	PF_A32B32G32R32F = 1,
	PF_B8G8R8A8 = 2,
	PF_FloatRGBA = 10,
	PF_R8G8B8A8 = 58,
};
